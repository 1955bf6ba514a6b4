"""Unary int8 activations as 256-entry tables: LOGISTIC (the interpreter's own float
table recipe) and HARD_SWISH (its int16 fixed-point pipeline, tabulated at load)."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.hard_swish import hard_swish, params
from edge_maas.native.lowering import Lowered, OpContext


def _table_op(ctx: OpContext, table: np.ndarray) -> Lowered:
    src, dst = ctx.array(ctx.input(0)).reshape(-1), ctx.activation(ctx.output()).reshape(-1)
    return Lowered(lambda _s: ex.Lut(src, dst, table))


def lower_logistic(ctx: OpContext) -> Lowered:
    (si, zi), (so, zo) = ctx.qparams(ctx.input(0)), ctx.qparams(ctx.output())
    return _table_op(ctx, ex.logistic_table(si, zi, so, zo))


def lower_hard_swish(ctx: OpContext) -> Lowered:
    (si, zi), (so, zo) = ctx.qparams(ctx.input(0)), ctx.qparams(ctx.output())
    values = np.arange(256, dtype=np.uint8).view(np.int8)  # table index = (uint8) value
    return _table_op(ctx, hard_swish(values, zi, zo, params(si, so)))
