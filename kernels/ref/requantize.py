"""QUANTIZE int8 -> int8 (Requantize) reference, position-dependent as the interpreter.

Its vectorized loop handles blocks of 16 elements with a rounding right shift
that rounds ties up; the n % 16 tail is scalar MultiplyByQuantizedMultiplier
(ties away from zero)."""

import numpy as np
from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier as mbqm
from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier_up as mbqm_up

BLOCK = 16


def requantize_int8(x, mult, shift, in_zp, out_zp):
    v = x.reshape(-1).astype(np.int64) - in_zp
    split = v.size - v.size % BLOCK
    out = np.concatenate([mbqm_up(v[:split], mult, shift), mbqm(v[split:], mult, shift)]) + out_zp
    return np.clip(out, -128, 127).astype(np.int8).reshape(x.shape)


def tables(mult, shift, in_zp, out_zp):
    """(block table, tail table): the function on every int8 value, indexed by (uint8) value."""
    q = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int64) - in_zp
    up = np.clip(mbqm_up(q, mult, shift) + out_zp, -128, 127).astype(np.int8)
    away = np.clip(mbqm(q, mult, shift) + out_zp, -128, 127).astype(np.int8)
    return up, away
