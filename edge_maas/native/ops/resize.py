"""RESIZE_NEAREST_NEIGHBOR on int8 by whole factors (the 2x upsampling of FPN / YOLO necks, face
detectors): a strided box copy whose input strides are 0 along the repeats.

The interpreter's source index per output row and column (kernels/ref/resize_nearest.py) is computed
here; it must be ``i // k`` on each axis (k = output size / input size, a whole number), which holds for
whole factors without align_corners, with or without half-pixel centers.  Other mappings are refused
(the stage then runs on the interpreter).  Two copies: the first row of each repeat from the input, then
the other rows of the repeat from that row, as whole rows."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.resize_nearest import nearest_map
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.movement import _same_quant


def lower(ctx: OpContext) -> Lowered:
    x, size_t, y = ctx.input(0), ctx.input(1), ctx.output()
    _same_quant(ctx, x)
    if len(x.shape) != 4:
        raise ctx.fail(f"input rank {len(x.shape)}; 4-D NHWC expected")
    if size_t is None or size_t.dtype != "int32" or size_t.size != 2:
        raise ctx.fail("size must be 2 int32 values (new height, new width)")
    oh, ow = (int(v) for v in ctx.constant(size_t, "the size (a computed one is not supported)").reshape(-1))
    b, h, w, c = x.shape
    if [b, oh, ow, c] != list(y.shape):
        raise ctx.fail(f"output shape {list(y.shape)} differs from the {[b, oh, ow, c]} the interpreter computes")
    o = ctx.options("ResizeNearestNeighborOptions")
    factors = []
    for n_in, n_out in ((h, oh), (w, ow)):
        k = n_out // n_in if n_in and n_out % n_in == 0 else 0
        m = nearest_map(n_in, n_out, bool(o.alignCorners), bool(o.halfPixelCenters))
        if k < 1 or m != [i // k for i in range(n_out)]:
            raise ctx.fail(f"resizing {n_in} -> {n_out} (align_corners={bool(o.alignCorners)}, half_pixel_centers="
                           f"{bool(o.halfPixelCenters)}) is not a whole-factor repeat; only those are supported")  # fmt: skip
        factors.append(k)
    ky, kx = factors
    # 1. the first of each ky output rows: out (b*h, xi, dx, c) <- in (b*h, xi, c); batch and rows merge
    #    (both strides scale by h)
    dims = [1, b * h, w, kx, c]
    out_st = [0, ky * ow * c, kx * c, c, 1]
    in_st = [0, w * c, c, 0, 1]
    # 2. the other ky - 1 rows: whole output rows copied from the first (one run of ow * c bytes each)
    row = ow * c
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)

    def make(_scratch):
        kernels = [ex.StridedCopy(src, dst, dims, in_st, out_st)]
        if ky > 1:
            kernels.append(ex.StridedCopy(dst, dst, [1, 1, b * h, ky - 1, row], [0, 0, ky * row, 0, 1],
                                          [0, 0, ky * row, row, 1], 0, row))  # fmt: skip
        return kernels

    return Lowered(make)
