"""The portable paths' blocking must not show in the bytes (tests/oneop.py runs every ISA, portable included):
the GEMM (kernels/c/gemm.c gemm_portable) takes k in blocks of 512 transposed on the stack and rows in passes of
64 and tiles of 2, so FULLY_CONNECTED with k across block edges, more than 64 rows and an odd last row; depthwise
with depth multiplier 1 (depthwise_conv.c dw_portable_dm1) takes blocks of 16 output pixels x 64 channels, and
multipliers of 8 (dw_portable_groups) blocks of 16 pixels per group of 8 channels, so rows wider than 16 pixels
with a partial last block and more than 64 channels, strided, dilated and 2 threads."""

from __future__ import annotations

import pytest
from test_op_depthwise_conv import _check as check_depthwise
from test_op_fully_connected import _check as check_fc


@pytest.mark.parametrize(("rows", "k", "n"), [(70, 1100, 20), (1, 1024, 33), (3, 513, 16)])
def test_portable_gemm_blocks(rows, k, n):
    check_fc(rows, k, n, 1, True, True, -3, 4, rows * 7 + k)


@pytest.mark.parametrize(
    ("h", "w", "c", "dm", "k", "stride", "dil", "same", "threads"),
    [
        (5, 37, 70, 1, 3, 1, 1, True, 1), (4, 40, 130, 1, 3, 2, 1, False, 1), (6, 33, 65, 1, 3, 1, 2, True, 2),
        (5, 35, 3, 8, 3, 1, 1, True, 1), (4, 41, 2, 16, 3, 2, 1, False, 2),
    ],
)  # fmt: skip
def test_portable_depthwise_blocks(h, w, c, dm, k, stride, dil, same, threads):
    assert check_depthwise(h, w, c, dm, k, stride, dil, same, 1, -9, 6, h * w + c, threads=threads)
