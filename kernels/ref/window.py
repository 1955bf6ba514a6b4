"""Sliding-window geometry shared by the conv references."""


def taps(in_hw, out_hw, k, stride, dilation, pad):
    """Yield (i, j, y, x, iy, ix) for every filter tap (i, j) and output (y, x) whose
    input pixel (iy, ix) lies inside the image (padding contributes nothing)."""
    for i in range(k[0]):
        for j in range(k[1]):
            for y in range(out_hw[0]):
                iy = y * stride[0] - pad[0] + i * dilation[0]
                if not 0 <= iy < in_hw[0]:
                    continue
                for x in range(out_hw[1]):
                    ix = x * stride[1] - pad[1] + j * dilation[1]
                    if 0 <= ix < in_hw[1]:
                        yield i, j, y, x, iy, ix
