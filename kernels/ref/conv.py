"""CONV_2D reference: direct loops over the window, int64 accumulation."""

import numpy as np

from edge_maas.kernels.quantize_ref import requantize_channels


def conv2d(x, w, bias, mult, shift, *, stride=(1, 1), dilation=(1, 1), pad=(0, 0), out_hw, in_zp, out_zp,
           act_min=-128, act_max=127, round_up_below=2**31 - 1):  # fmt: skip
    """x [B,H,W,C] int8, w [O,KH,KW,C] int8, bias [O] int32 -> [B,OH,OW,O] int8."""
    b, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    oh, ow = out_hw
    xp = x.astype(np.int64) - in_zp
    acc = np.zeros((b, oh, ow, o), np.int64) + bias.astype(np.int64)
    for i in range(kh):
        for j in range(kw):
            for y in range(oh):
                iy = y * stride[0] - pad[0] + i * dilation[0]
                if not 0 <= iy < h:
                    continue
                for xx in range(ow):
                    ix = xx * stride[1] - pad[1] + j * dilation[1]
                    if 0 <= ix < wd:
                        acc[:, y, xx, :] += xp[:, iy, ix, :] @ w[:, i, j, :].astype(np.int64).T
    return requantize_channels(acc, mult, shift, out_zp, act_min, act_max, round_up_below)
