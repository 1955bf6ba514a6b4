"""RESIZE_BILINEAR on int8 (FPN / segmentation / detector necks): the interpreter's integer kernel
(ResizeBilinearInteger; kernels/c/resize_bilinear.c, numpy reference kernels/ref/resize_bilinear.py), every output
size, with align_corners or half_pixel_centers.  The source indices and 1/1024 fractions per output row and column
are computed here once.  Like the interpreter, the values are interpolated as stored (the quantization is not
used), the size must be 2 positive int32 values, and align_corners with half_pixel_centers is refused."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.resize_bilinear import axis_map, scale_10
from edge_maas.native.lowering import Lowered, OpContext


def lower(ctx: OpContext) -> Lowered:
    x, size_t, y = ctx.input(0), ctx.input(1), ctx.output()
    if x is None or x.dtype != "int8" or y.dtype != "int8":
        raise ctx.fail(f"input {x.dtype if x else None} -> output {y.dtype}; the native kernel handles int8 -> int8")
    if len(x.shape) != 4:
        raise ctx.fail(f"input rank {len(x.shape)}; 4-D NHWC expected")
    if size_t is None or size_t.dtype != "int32" or size_t.size != 2:
        raise ctx.fail("size must be 2 int32 values (new height, new width)")
    oh, ow = (int(v) for v in ctx.constant(size_t, "the size (a computed one is not supported)").reshape(-1))
    if oh <= 0 or ow <= 0:
        raise ctx.fail(f"size {[oh, ow]} must be positive (the interpreter refuses it)")
    b, h, w, c = (int(d) for d in x.shape)
    if [b, oh, ow, c] != list(y.shape):
        raise ctx.fail(f"output shape {list(y.shape)} differs from the {[b, oh, ow, c]} the interpreter computes")
    o = ctx.options("ResizeBilinearOptions")
    align, half = bool(o.alignCorners), bool(o.halfPixelCenters)
    if align and half:
        raise ctx.fail("align_corners and half_pixel_centers are both set; the interpreter refuses it")
    for n_in, n_out in ((h, oh), (w, ow)):
        if (n_out + 1) * scale_10(n_in, n_out, align) >= 2**31:  # the interpreter's int32 index * scale
            raise ctx.fail(f"resizing {n_in} -> {n_out} overflows the interpreter's 10-bit fixed-point coordinates")
    ymap = np.ascontiguousarray(np.stack(axis_map(h, oh, align, half)))
    xmap = np.ascontiguousarray(np.stack(axis_map(w, ow, align, half)))
    for name, m, n_in in (("row", ymap, h), ("column", xmap, w)):
        if m[:2].min() < 0 or m[:2].max() >= n_in or m[2].min() < -512 or m[2].max() > 1023:
            raise ctx.fail(f"a source {name} falls outside the input (the interpreter would read out of bounds)")
    src, dst = ctx.array(x), ctx.activation(y)
    return Lowered(lambda _s: ex.ResizeBilinear(src, dst, ymap, xmap, batch=b, in_h=h, in_w=w, channels=c,
                                                out_h=oh, out_w=ow))  # fmt: skip
