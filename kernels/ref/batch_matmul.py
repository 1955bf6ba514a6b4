"""BATCH_MATMUL int8 reference: reference_ops::BatchMatMul (tflite/kernels/internal/reference/batch_matmul.h), the
only kernel the interpreter registers: int32 sums, scalar MultiplyByQuantizedMultiplier (ties away from zero)."""

from __future__ import annotations

import numpy as np
from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier as mbqm


def batch_matmul(lhs, rhs, lhs_zp: int, rhs_zp: int, out_zp: int, mult: int, shift: int, adj_x=False, adj_y=False):
    a = lhs.astype(np.int64) - lhs_zp
    b = rhs.astype(np.int64) - rhs_zp
    if adj_x:
        a = np.swapaxes(a, -1, -2)
    if adj_y:
        b = np.swapaxes(b, -1, -2)
    acc = np.matmul(a, b)
    acc = ((acc + 2**31) % 2**32) - 2**31  # the int32 sum wraps as the interpreter's
    return np.clip(mbqm(acc, mult, shift) + out_zp, -128, 127).astype(np.int8)
