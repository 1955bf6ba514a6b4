"""The aarch64 NEON paths of ADD, SUB, MUL, MAX/AVERAGE_POOL_2D, MEAN and the standalone output stage against the
portable C, byte for byte (tests/c/neon_elementwise_check.c: many random cases per op, rows and channel counts
around the SIMD widths, every requantization shift, outputs far outside int8).  Built and run as
tests/test_neon_kernels.py does: natively on aarch64, or with aarch64-linux-gnu-gcc under qemu-aarch64 (seconds);
skipped without either.  On x86 the per-op tests and tests/test_kernels_*.py check the same kernels' x86 paths."""

from __future__ import annotations

from test_neon_kernels import _run


def test_neon_elementwise_pooling_mean_requantize_match_the_portable_path(tmp_path):
    out = _run(tmp_path, "neon_elementwise_check.c", "add.c", "mul.c", "pooling.c", "mean.c", "requantize_rows.c",
               "isa.c")  # fmt: skip
    assert "1500 binary cases, 0 differ; 400 pooling cases, 0 differ; 400 mean/requantize cases, 0 differ" in out
