"""MUL reference.  Rows are the kernel's inner rows ([rows, n]); in the interpreter's
vectorized runs of 16 the product saturates to int16 and the zero point is added
with int16 wrap-around before the clamp."""

import numpy as np
from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier as mbqm


def mul(x1, x2, *, in1_offset, in2_offset, out_offset, out_mult, out_shift, act_min=-128, act_max=127):
    """x1, x2 [rows, n] (already broadcast)."""
    v = mbqm((x1.astype(np.int64) + in1_offset) * (x2.astype(np.int64) + in2_offset), out_mult, out_shift)
    n = v.shape[-1]
    blocked = n - n % 16
    head = np.clip(v[..., :blocked], -(2**15), 2**15 - 1) + out_offset
    v[..., :blocked] = ((head + 2**15) % 2**16) - 2**15
    v[..., blocked:] += out_offset
    return np.clip(v, act_min, act_max).astype(np.int8)
