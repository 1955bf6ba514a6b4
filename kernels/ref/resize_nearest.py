"""RESIZE_NEAREST_NEIGHBOR reference: the interpreter's source index per output index (float32 scale,
floor or round, clamped), as reference_ops::GetNearestNeighbor computes it."""

import numpy as np


def nearest_map(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> list[int]:
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    offset = np.float32(0.5 if half_pixel_centers else 0.0)
    out = []
    for i in range(out_size):
        v = (np.float32(i) + offset) * scale
        # TfLiteRound: half away from zero; floor otherwise
        j = int(np.floor(np.float64(v) + 0.5)) if align_corners else int(np.floor(v))
        j = min(j, in_size - 1)
        if half_pixel_centers:
            j = max(0, j)
        out.append(j)
    return out


def resize_nearest(x: np.ndarray, out_hw, align_corners=False, half_pixel_centers=False) -> np.ndarray:
    """x: [B, H, W, C] -> [B, OH, OW, C]."""
    ys = nearest_map(x.shape[1], out_hw[0], align_corners, half_pixel_centers)
    xs = nearest_map(x.shape[2], out_hw[1], align_corners, half_pixel_centers)
    return x[:, ys][:, :, xs]
