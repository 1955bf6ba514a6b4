"""QUANTIZE between int8 and uint8 (and uint8 -> uint8), as the interpreter's optimized Requantize.

Same arithmetic as int8 -> int8 (kernels/ref/requantize.py): blocks of 16
elements round the final shift's ties up, the n % 16 tail rounds them away from
zero; only the input's reading (signed or not) and the output's clamp differ.
The effective scale is double(in_scale) / double(out_scale) through
QuantizeMultiplier, so a scale change is covered, not only the +-128 shift."""

import numpy as np
from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier as mbqm
from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier_up as mbqm_up

BLOCK = 16
RANGE = {"int8": (-128, 127), "uint8": (0, 255)}


def requantize(x: np.ndarray, mult: int, shift: int, in_zp: int, out_zp: int, out_dtype: str) -> np.ndarray:
    lo, hi = RANGE[out_dtype]
    v = x.reshape(-1).astype(np.int64) - in_zp
    split = v.size - v.size % BLOCK
    out = np.concatenate([mbqm_up(v[:split], mult, shift), mbqm(v[split:], mult, shift)]) + out_zp
    return np.clip(out, lo, hi).astype(out_dtype).reshape(x.shape)


def tables(mult: int, shift: int, in_zp: int, out_zp: int, in_dtype: str, out_dtype: str):
    """(block table, tail table) as int8 bytes, indexed by the input byte (its uint8 value)."""
    lo, hi = RANGE[out_dtype]
    v = np.arange(256, dtype=np.uint8).view(in_dtype).astype(np.int64) - in_zp
    return tuple(np.clip(f(v, mult, shift) + out_zp, lo, hi).astype(out_dtype).view(np.int8) for f in (mbqm_up, mbqm))
