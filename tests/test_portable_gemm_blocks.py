"""The portable GEMM's blocking (kernels/c/gemm.c gemm_portable): k in blocks of 512 transposed on the stack, rows in
passes of 64 and tiles of 2, so FULLY_CONNECTED with k across block edges, more than 64 rows and an odd last row must
still give the interpreter's bytes on every ISA (tests/oneop.py runs portable too)."""

from __future__ import annotations

import pytest
from test_op_fully_connected import _check


@pytest.mark.parametrize(("rows", "k", "n"), [(70, 1100, 20), (1, 1024, 33), (3, 513, 16)])
def test_portable_gemm_blocks(rows, k, n):
    _check(rows, k, n, 1, True, True, -3, 4, rows * 7 + k)
