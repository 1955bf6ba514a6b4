"""ADD reference.  Rows are the kernel's inner rows ([rows, n]); in the interpreter's
vectorized runs (16 elements, 8 when one operand is a scalar broadcast along the
row) the output plus zero point wraps to int16 before the clamp."""

import numpy as np
from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier as mbqm


def add(x1, x2, *, block=16, in1_offset, in2_offset, out_offset, in1_mult, in1_shift, in2_mult, in2_shift,
        out_mult, out_shift, left_shift, act_min=-128, act_max=127):  # fmt: skip
    """x1, x2 [rows, n] (already broadcast)."""
    v1 = (x1.astype(np.int64) + in1_offset) << left_shift
    v2 = (x2.astype(np.int64) + in2_offset) << left_shift
    v = mbqm(mbqm(v1, in1_mult, in1_shift) + mbqm(v2, in2_mult, in2_shift), out_mult, out_shift) + out_offset
    n = v.shape[-1]
    blocked = n - n % block
    v[..., :blocked] = ((v[..., :blocked] + 2**15) % 2**16) - 2**15
    return np.clip(v, act_min, act_max).astype(np.int8)
