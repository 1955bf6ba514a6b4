"""SOFTMAX (int8 -> int8) over the last axis."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext


def lower(ctx: OpContext) -> Lowered:
    o = ctx.options("SoftmaxOptions")
    x, y = ctx.input(0), ctx.output()
    (si, _), (so, zo) = ctx.qparams(x), ctx.qparams(y)
    if x.shape != y.shape or not x.shape:
        raise ctx.fail(f"input {list(x.shape)} and output {list(y.shape)} shapes differ")
    depth = x.shape[-1]
    table = ex.softmax_table(si, o.beta)
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    return Lowered(lambda _s: ex.Softmax(src, dst, x.size // depth, depth, table, so, zo))
