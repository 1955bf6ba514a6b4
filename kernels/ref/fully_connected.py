"""FULLY_CONNECTED reference."""

import numpy as np
from edge_maas.kernels.quantize_ref import requantize_channels


def fully_connected(x, w, bias, mult, shift, *, in_zp, out_zp, act_min=-128, act_max=127, round_up_below=2**31 - 1):
    """x [rows, K] int8, w [N, K] int8, bias [N] int32 -> [rows, N] int8."""
    acc = (x.astype(np.int64) - in_zp) @ w.astype(np.int64).T + bias.astype(np.int64)
    return requantize_channels(acc, mult, shift, out_zp, act_min, act_max, round_up_below)
