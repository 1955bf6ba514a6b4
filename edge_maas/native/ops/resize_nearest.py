"""RESIZE_NEAREST_NEIGHBOR on int8 / uint8 with any index map: whole-factor repeats keep resize.py's strided copy;
every other mapping (non-whole factors, align_corners, half_pixel_centers, downscaling) runs kernels/c/resize_nearest.c
with the interpreter's source index per output row and column (reference_ops::GetNearestNeighbor: float32 scale,
floor, or round half away from zero with align_corners; kernels/ref/resize_nearest.py).  The quantization must be
the input's, as resize.py requires."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.resize_nearest import nearest_map
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops import resize
from edge_maas.native.ops.movement import _same_quant


def lower(ctx: OpContext) -> Lowered:
    x, size_t, y = ctx.input(0), ctx.input(1), ctx.output()
    _same_quant(ctx, x)
    if len(x.shape) != 4 or x.dtype not in ("int8", "uint8"):
        raise ctx.fail(f"input {x.dtype} of rank {len(x.shape)}; 4-D NHWC int8 or uint8 expected")
    if size_t is None or size_t.dtype != "int32" or size_t.size != 2:
        raise ctx.fail("size must be 2 int32 values (new height, new width)")
    oh, ow = (int(v) for v in ctx.constant(size_t, "the size (a computed one is not supported)").reshape(-1))
    b, h, w, c = (int(d) for d in x.shape)
    if oh <= 0 or ow <= 0 or [b, oh, ow, c] != list(y.shape):
        raise ctx.fail(f"output shape {list(y.shape)} differs from the {[b, oh, ow, c]} the interpreter computes")
    o = ctx.options("ResizeNearestNeighborOptions")
    align, half = bool(o.alignCorners), bool(o.halfPixelCenters)
    ymap, xmap = nearest_map(h, oh, align, half), nearest_map(w, ow, align, half)
    whole = all(n_out % n_in == 0 and m == [i // (n_out // n_in) for i in range(n_out)]
                for n_in, n_out, m in ((h, oh, ymap), (w, ow, xmap)))  # fmt: skip
    if whole:
        return resize.lower(ctx)
    ym, xm = np.array(ymap, np.int32), np.array(xmap, np.int32)
    if ym.min() < 0 or ym.max() >= h or xm.min() < 0 or xm.max() >= w:
        raise ctx.fail("a source index falls outside the input")
    src, dst = ctx.array(x), ctx.activation(y)
    return Lowered(lambda _s: ex.ResizeNearest(src, dst, ym, xm, batch=b, in_h=h, in_w=w, channels=c, out_h=oh,
                                               out_w=ow))  # fmt: skip
