"""MUL reference (numpy broadcasting)."""

import numpy as np

from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier as mbqm


def mul(x1, x2, *, in1_offset, in2_offset, out_offset, out_mult, out_shift, act_min=-128, act_max=127):
    prod = (x1.astype(np.int64) + in1_offset) * (x2.astype(np.int64) + in2_offset)
    return np.clip(mbqm(prod, out_mult, out_shift) + out_offset, act_min, act_max).astype(np.int8)
