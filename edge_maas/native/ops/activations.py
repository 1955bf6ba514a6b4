"""Unary int8 activations as 256-entry tables: LOGISTIC (the interpreter's own float
table recipe) and HARD_SWISH (its int16 fixed-point pipeline, tabulated at load)."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.hard_swish import hard_swish, params
from edge_maas.native.lowering import Lowered, OpContext


def same_shape(ctx: OpContext) -> None:
    """Elementwise ops: the interpreter gives the output the input's shape; a model declaring another is refused."""
    x, y = ctx.input(0), ctx.output()
    if x is None or list(x.shape) != list(y.shape):
        raise ctx.fail(f"output shape {list(y.shape)} differs from the input's {list(x.shape) if x else None}")


def _table_op(ctx: OpContext, table: np.ndarray) -> Lowered:
    same_shape(ctx)
    src, dst = ctx.array(ctx.input(0)).reshape(-1), ctx.activation(ctx.output()).reshape(-1)
    return Lowered(lambda _s: ex.Lut(src, dst, table))


def lower_logistic(ctx: OpContext) -> Lowered:
    (si, zi), (so, zo) = ctx.qparams(ctx.input(0)), ctx.qparams(ctx.output())
    if float(so) != 1.0 / 256:  # SigmoidPrepare (int8): output scale exactly 1/256; the zero point is free
        raise ctx.fail(f"output scale {so:.8g} must be exactly 1/256 for int8 LOGISTIC")
    return _table_op(ctx, ex.logistic_table(si, zi, so, zo))


def lower_hard_swish(ctx: OpContext) -> Lowered:
    (si, zi), (so, zo) = ctx.qparams(ctx.input(0)), ctx.qparams(ctx.output())
    p = params(si, so)
    if p["out_exp"] > 0:  # HardSwishPrepare: output_multiplier_exponent <= 0
        raise ctx.fail(f"input scale / 128 / output scale = 2^{p['out_exp']} x m is >= 1; the interpreter refuses it")
    values = np.arange(256, dtype=np.uint8).view(np.int8)  # table index = (uint8) value
    return _table_op(ctx, hard_swish(values, zi, zo, p))
