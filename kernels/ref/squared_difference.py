"""SQUARED_DIFFERENCE int8 reference: squared_difference.cc's int8 kernel (scalar, ties away from zero)."""

import numpy as np
from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier as mbqm


def squared_difference(x1, x2, z1: int, z2: int, zo: int, p: dict) -> np.ndarray:
    """x1, x2 int8 (broadcast); p as edge_maas.native.ops.squared_difference.params."""
    a, b = np.broadcast_arrays(x1.astype(np.int64) - z1, x2.astype(np.int64) - z2)
    d = mbqm(a << p["left_shift"], p["in1_mult"], p["in1_shift"]) - mbqm(b << p["left_shift"], p["in2_mult"], p["in2_shift"])
    return np.clip(mbqm(d * d, p["out_mult"], p["out_shift"]) + zo, -128, 127).astype(np.int8)
