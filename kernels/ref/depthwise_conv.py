"""DEPTHWISE_CONV_2D reference."""

import numpy as np
from edge_maas.kernels.quantize_ref import requantize_channels
from edge_maas.kernels.ref.window import taps


def depthwise_conv2d(x, w, bias, mult, shift, *, depth_mult=1, stride=(1, 1), dilation=(1, 1), pad=(0, 0),
                     out_hw, in_zp, out_zp, act_min=-128, act_max=127, round_up_below=2**31 - 1):  # fmt: skip
    """x [B,H,W,C] int8, w [1,KH,KW,C*dm] int8 -> [B,OH,OW,C*dm] int8."""
    b, h, wd, _ = x.shape
    _, kh, kw, o = w.shape
    oh, ow = out_hw
    xp = np.repeat(x.astype(np.int64) - in_zp, depth_mult, axis=3)  # channel c*dm+m reads input c
    acc = np.zeros((b, oh, ow, o), np.int64) + bias.astype(np.int64)
    for i, j, y, xx, iy, ix in taps((h, wd), (oh, ow), (kh, kw), stride, dilation, pad):
        acc[:, y, xx, :] += xp[:, iy, ix, :] * w[0, i, j, :].astype(np.int64)
    return requantize_channels(acc, mult, shift, out_zp, act_min, act_max, round_up_below)
