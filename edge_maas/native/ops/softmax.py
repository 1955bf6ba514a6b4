"""SOFTMAX (int8 -> int8) over the last axis."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext


def lower(ctx: OpContext) -> Lowered:
    o = ctx.options("SoftmaxOptions")
    x, y = ctx.input(0), ctx.output()
    (si, _), (so, zo) = ctx.qparams(x), ctx.qparams(y)
    if not x.shape:
        raise ctx.fail("input is a scalar; the interpreter requires rank >= 1")
    if x.shape != y.shape:
        raise ctx.fail(f"input {list(x.shape)} and output {list(y.shape)} shapes differ")
    # SoftmaxPrepare (int8 -> int8): output zero point -128 and scale 1/256 within 0.1% (float32 arithmetic)
    if zo != -128:
        raise ctx.fail(f"output zero point {zo} must be -128 for int8 SOFTMAX")
    f = np.float32
    if not abs(f(so) - f(1.0) / f(256)) <= f(0.001) * f(1.0) / f(256):
        raise ctx.fail(f"output scale {so:.8g} must be 1/256 (within 0.1%) for int8 SOFTMAX")
    depth = x.shape[-1]
    table = ex.softmax_table(si, o.beta)
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    return Lowered(lambda _s: ex.Softmax(src, dst, x.size // depth, depth, table, so, zo))
