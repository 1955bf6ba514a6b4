"""ADD reference (numpy broadcasting)."""

import numpy as np

from edge_maas.kernels.quantize_ref import multiply_by_quantized_multiplier as mbqm


def add(x1, x2, *, in1_offset, in2_offset, out_offset, in1_mult, in1_shift, in2_mult, in2_shift,
        out_mult, out_shift, left_shift, act_min=-128, act_max=127):  # fmt: skip
    v1 = (x1.astype(np.int64) + in1_offset) << left_shift
    v2 = (x2.astype(np.int64) + in2_offset) << left_shift
    s = mbqm(v1, in1_mult, in1_shift) + mbqm(v2, in2_mult, in2_shift)
    return np.clip(mbqm(s, out_mult, out_shift) + out_offset, act_min, act_max).astype(np.int8)
