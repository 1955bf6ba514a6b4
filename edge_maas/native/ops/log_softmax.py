"""LOG_SOFTMAX (int8 -> int8) over the last axis (classifier heads exported with log-probabilities):
kernels/c/log_softmax.c, numpy reference kernels/ref/log_softmax.py.  LogSoftmaxPrepare requires the output scale
16/256 and zero point 127 for int8; the table is SOFTMAX's (beta 1)."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext


def lower(ctx: OpContext) -> Lowered:
    x, y = ctx.input(0), ctx.output()
    (si, _), (so, zo) = ctx.qparams(x), ctx.qparams(y)
    if not x.shape or list(x.shape) != list(y.shape):
        raise ctx.fail(f"input {list(x.shape)} and output {list(y.shape)}: rank >= 1 and equal shapes required")
    if float(so) != 16.0 / 256 or zo != 127:
        raise ctx.fail(f"output quantization ({so:.8g}, {zo}) must be (16/256, 127) for int8 LOG_SOFTMAX")
    depth = int(x.shape[-1])
    table = ex.softmax_table(si, 1.0)
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    return Lowered(lambda _s: ex.LogSoftmax(src, dst, x.size // depth, depth, table, si, so, zo))
