"""PRELU int8 reference: reference_ops::Prelu / BroadcastPrelu4DSlow (tflite/kernels/internal/reference/prelu.h),
the kernel the interpreter runs for int8: scalar MultiplyByQuantizedMultiplier (ties away from zero) everywhere."""

from __future__ import annotations

import numpy as np
from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier as mbqm


def prelu(x: np.ndarray, alpha: np.ndarray, in_zp: int, alpha_zp: int, out_zp: int, m1: int, s1: int, m2: int,
          s2: int) -> np.ndarray:  # fmt: skip
    """x int8, alpha int8 broadcastable to x; (m1, s1) for x - zp >= 0, (m2, s2) for the product below."""
    v = x.astype(np.int64) - in_zp
    a = np.broadcast_to(alpha, x.shape).astype(np.int64) - alpha_zp
    out = np.where(v >= 0, mbqm(v, m1, s1), mbqm(v * a, m2, s2)) + out_zp
    return np.clip(out, -128, 127).astype(np.int8)
