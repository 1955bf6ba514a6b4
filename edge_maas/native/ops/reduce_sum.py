"""SUM on int8 over any axes (kernels/c/reduce_sum.c): the interpreter's generic optimized QuantizedMeanOrSum with
compute_sum, int32 sums rescaled in float32 (scale in_scale / out_scale, bias -zp * scale * count, roundf).  Any
output quantization; the axes and shapes as REDUCE_MAX (reduce_max.reduce_layout)."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.reduce_max import reduce_layout


def lower(ctx: OpContext) -> Lowered:
    x, y = ctx.input(0), ctx.output()
    (si, zi), (so, zo) = ctx.qparams(x), ctx.qparams(y)
    dims, strides, count = reduce_layout(ctx)
    if count >= 2**24:
        raise ctx.fail(f"{count} elements per sum: float32 no longer holds the count exactly")
    src, dst, n_out = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1), int(y.size)

    def make(scratch: np.ndarray):
        return ex.ReduceSum(src, dst, dims, strides, in_scale=si, in_zp=zi, out_scale=so, out_zp=zo, count=count,
                            scratch=scratch.view(np.int32)[:n_out])  # fmt: skip

    return Lowered(make, 4 * n_out)
