"""The aarch64 NEON kernels against the portable C, byte for byte, at the C level: requant.h's NEON
requantization (vqrdmulhq_s32 + vrshlq_s32 with TFLite's sign fixup for ties away from zero) lane by lane on
random values and on every kind of tie, the NEON GEMM and widening (gemm_neon.c) on random shapes with
partial tiles, whole CONV_2D / FULLY_CONNECTED on the neon and dotprod (sdot) paths, and DEPTHWISE_CONV_2D (every depth
multiplier).  The harnesses in tests/c are compiled for aarch64 and run natively on an aarch64 machine with a C
compiler, or on x86-64 with aarch64-linux-gnu-gcc and qemu-aarch64(-static) (user mode: seconds); skipped
without either.  The per-op tests (tests/oneop.py runs every ISA) check the same paths through whole models."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
C = REPO / "kernels" / "c"
FLAGS = ["-O2", "-static", "-fopenmp", "-ffp-contract=off", f"-I{REPO / 'kernels'}", f"-I{C}"]


def _toolchain() -> tuple[str, list[str]]:
    if platform.machine() in ("aarch64", "arm64"):
        cc = shutil.which("gcc") or shutil.which("cc")
        if cc:
            return cc, []
        pytest.skip("no C compiler on this aarch64 machine")
    cc = shutil.which("aarch64-linux-gnu-gcc")
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not (cc and qemu):
        pytest.skip("needs aarch64-linux-gnu-gcc and qemu-aarch64 (Debian: gcc-aarch64-linux-gnu qemu-user-static)")
    return cc, [qemu]


def _run(tmp_path, main: str, *sources: str) -> str:
    cc, runner = _toolchain()
    exe = tmp_path / Path(main).stem
    build = subprocess.run([cc, *FLAGS, str(REPO / "tests" / "c" / main), *(str(C / s) for s in sources), "-o",
                            str(exe)], capture_output=True, text=True, check=False)  # fmt: skip
    assert build.returncode == 0, build.stderr
    res = subprocess.run([*runner, str(exe)], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_neon_requantization_matches_the_portable_formula(tmp_path):
    out = _run(tmp_path, "neon_requant_check.c")
    assert " 0 mismatches" in out and "checked 6127012 lanes" in out


def test_neon_gemm_and_widening_match_the_portable_path(tmp_path):
    out = _run(tmp_path, "neon_gemm_check.c", "gemm.c", "gemm_neon.c", "gemm_vnni.c", "isa.c", "conv.c")
    assert "300 gemm cases, 0 differ" in out


def test_neon_and_sdot_conv_and_fully_connected_match_the_portable_path(tmp_path):
    """Whole CONV_2D / FULLY_CONNECTED kernels (im2col, padding, strides, dilations, pointwise, partial panels)
    on neon and, where the CPU has it (qemu-user's default CPU does), dotprod."""
    out = _run(tmp_path, "neon_conv_check.c", "gemm.c", "gemm_neon.c", "gemm_vnni.c", "isa.c", "conv.c",
               "fully_connected.c")
    assert "200 conv + fully connected cases, 0 differ" in out
    if platform.machine() not in ("aarch64", "arm64"):
        assert "neon only" not in out  # under qemu-user's max CPU the sdot path must have run


def test_neon_depthwise_matches_the_portable_path(tmp_path):
    """DEPTHWISE_CONV_2D on neon (depthwise_neon.c: multiplier 1's whole 16-channel groups, and the tbl-gathered
    groups of every multiplier, partial groups and fewer than 16 channels) over multipliers 1-5, 8, 16, 24,
    filters 1x1 to 5x5 and 17x17, padding, strides, dilations; the input ends at a PROT_NONE page, so a gather
    load past the tensor faults."""
    out = _run(tmp_path, "neon_depthwise_check.c", "depthwise_conv.c", "depthwise_neon.c", "isa.c")
    assert "600 depthwise cases, 0 differ" in out


def test_neon_int8_conv_edges_and_minus_128_fallback(tmp_path):
    """The neon path's int8 GEMM (smull/smlal pairs + sadalp, gemm_neon.c) on its tails: a run of 8 k + 4, a
    lone last pixel / GEMM row, partial 16-channel blocks, inputs and weights at the int16 bound (2 x 128 x 127),
    in_offset at both ends; weights holding -128 fall back to the int16 GEMM and match; forced past that check
    the int16 lanes wrap and the bytes differ (so the cases above ran the int8 GEMM, and the check is needed)."""
    out = _run(tmp_path, "neon8_conv_check.c", "gemm.c", "gemm_neon.c", "gemm_vnni.c", "isa.c", "conv.c")
    m = re.search(
        r"400 edge cases, 60 with -128 weights, (\d+) differ; forced past the -128 check (\d+) of 60 wrap", out
    )
    assert m, out
    assert m.group(1) == "0", out
    assert int(m.group(2)) >= 30, out
