"""RESIZE_BILINEAR int8 reference: the interpreter's kernel for int8 (optimized_ops::ResizeBilinear forwards int8
to reference_ops::ResizeBilinearInteger, tflite/kernels/internal/reference/resize_bilinear.h): 10-bit fixed-point
source coordinates, products of the four corner weights summed in 64 bits, divided by 2^20 rounding half away
from zero (the build does not define TFLITE_SINGLE_ROUNDING: measured, negative ties round down,
tests/test_op_resize_bilinear.py).  The quantization is not used: values are interpolated as stored."""

from __future__ import annotations

import numpy as np


def _cdiv(a: int, b: int) -> int:
    """C's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def scale_10(in_size: int, out_size: int, align_corners: bool) -> int:
    if align_corners and out_size > 1:
        return _cdiv((1 << 10) * (in_size - 1) + (out_size - 1) // 2, out_size - 1)
    return _cdiv((1 << 10) * in_size + out_size // 2, out_size)


def axis_map(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool):
    """Per output index: (lower source index, upper source index, fraction in 1/1024: scaled - 1024 * lower),
    as ComputeInterpolationValuesInteger.  The fraction may be negative (half-pixel centers at the first rows)."""
    s = scale_10(in_size, out_size, align_corners)
    lo, hi, frac = [], [], []
    for v in range(out_size):
        scaled = v * s + s // 2 - (1 << 9) if half_pixel_centers else v * s
        lower = max(_cdiv(scaled, 1 << 10), 0)
        upper = min(_cdiv(scaled + (1 << 10) - 1, 1 << 10), in_size - 1)
        lo.append(lower)
        hi.append(upper)
        frac.append(scaled - (1 << 10) * lower)
    return np.array(lo, np.int32), np.array(hi, np.int32), np.array(frac, np.int32)


def resize_bilinear(x: np.ndarray, out_hw, align_corners=False, half_pixel_centers=False) -> np.ndarray:
    """x: [B, H, W, C] int8 -> [B, OH, OW, C] int8."""
    _, h, w, _ = x.shape
    y0, y1, dy = axis_map(h, out_hw[0], align_corners, half_pixel_centers)
    x0, x1, dx = axis_map(w, out_hw[1], align_corners, half_pixel_centers)
    v = x.astype(np.int64)
    wy0, wy1 = (1024 - dy)[None, :, None, None].astype(np.int64), dy[None, :, None, None].astype(np.int64)
    wx0, wx1 = (1024 - dx)[None, None, :, None].astype(np.int64), dx[None, None, :, None].astype(np.int64)
    total = (v[:, y0][:, :, x0] * wy0 * wx0 + v[:, y1][:, :, x0] * wy1 * wx0
             + v[:, y0][:, :, x1] * wy0 * wx1 + v[:, y1][:, :, x1] * wy1 * wx1)  # fmt: skip
    rounded = total + np.where(total > 0, 1 << 19, -(1 << 19))
    out = np.sign(rounded) * (np.abs(rounded) // (1 << 20))  # C division: toward zero
    return out.astype(np.int8)
