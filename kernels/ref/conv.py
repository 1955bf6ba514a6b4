"""CONV_2D reference: direct loops over the window, int64 accumulation."""

import numpy as np
from edge_maas.kernels.quantize_ref import requantize_channels
from edge_maas.kernels.ref.window import taps


def conv2d(x, w, bias, mult, shift, *, stride=(1, 1), dilation=(1, 1), pad=(0, 0), out_hw, in_zp, out_zp,
           act_min=-128, act_max=127, round_up_below=2**31 - 1):  # fmt: skip
    """x [B,H,W,C] int8, w [O,KH,KW,C] int8, bias [O] int32 -> [B,OH,OW,O] int8."""
    b, h, wd, _ = x.shape
    o, kh, kw, _ = w.shape
    oh, ow = out_hw
    xp = x.astype(np.int64) - in_zp
    acc = np.zeros((b, oh, ow, o), np.int64) + bias.astype(np.int64)
    for i, j, y, xx, iy, ix in taps((h, wd), (oh, ow), (kh, kw), stride, dilation, pad):
        acc[:, y, xx, :] += xp[:, iy, ix, :] @ w[:, i, j, :].astype(np.int64).T
    return requantize_channels(acc, mult, shift, out_zp, act_min, act_max, round_up_below)
