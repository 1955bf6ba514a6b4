"""AVERAGE_POOL_2D / MAX_POOL_2D reference: window clipped to the image."""

import numpy as np


def pool2d(x, kind, *, k, stride, pad, out_hw, act_min=-128, act_max=127):
    b, h, w, c = x.shape
    oh, ow = out_hw
    out = np.empty((b, oh, ow, c), np.int8)
    for y in range(oh):
        for xx in range(ow):
            y0, x0 = y * stride[0] - pad[0], xx * stride[1] - pad[1]
            win = x[:, max(y0, 0) : min(y0 + k[0], h), max(x0, 0) : min(x0 + k[1], w), :].astype(np.int64)
            if kind == "max":
                v = win.max(axis=(1, 2))
            else:
                n = win.shape[1] * win.shape[2]
                acc = win.sum(axis=(1, 2))
                v = np.where(acc > 0, (acc + n // 2) // n, -((-acc + n // 2) // n))  # half away from zero
            out[:, y, xx, :] = np.clip(v, act_min, act_max)
    return out
