"""The table kernel (LOGISTIC, TANH, GELU, ELU, EXP, HARD_SWISH...: any int8 -> int8 function) called directly on
every instruction-set path: every byte value at every position of a vector step, random tables (the AVX2 path's
XORed rows must telescope back to the table for each of the 256 indices), runs of every length around the 32-byte
step, and the split between the block table and the tail table."""

from __future__ import annotations

import numpy as np
import pytest
from edge_maas.kernels import executor as ex
from oneop import ISAS, isa


@pytest.mark.parametrize("path", ISAS)
@pytest.mark.parametrize("n", [1, 31, 32, 33, 64, 95, 256 * 33 + 7])
def test_lut_every_byte(path, n):
    rng = np.random.default_rng(n)
    for _ in range(4):
        table, tail = (rng.integers(-128, 128, 256, dtype=np.int8) for _ in range(2))
        # every byte value, rotated so each one also falls in every lane of a 32-byte step
        x = np.resize(np.roll(np.arange(-128, 128, dtype=np.int8), int(rng.integers(256))), n)
        x[: n // 2] = rng.permutation(x[: n // 2])
        for split in (n, n // 2, 0, 17):
            out = np.empty_like(x)
            with isa(path):
                ex.Lut(x, out, table, tail, split).run()
            split = min(split, n)
            want = np.concatenate([table[x[:split].view(np.uint8)], tail[x[split:].view(np.uint8)]])
            np.testing.assert_array_equal(out, want)
