"""GELU on int8 (exact and approximate): the interpreter's float lookup table (LUTPopulate with reference/gelu.h's
GeluTransform, 0.5 x erfc(-x / sqrt 2), or GeluTransformApproximate, the tanh form; kernels/c/lut_float.c, numpy
reference kernels/ref/float_lut.py), run by the table kernel.  Any output quantization, as the interpreter."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.activations import _table_op


def lower(ctx: OpContext) -> Lowered:
    (si, zi), (so, zo) = ctx.qparams(ctx.input(0)), ctx.qparams(ctx.output())
    opts = ctx.op.options  # GeluOptions; a model without it gets the interpreter's default (approximate = false)
    approximate = bool(getattr(opts, "approximate", False)) if type(opts).__name__ == "GeluOptionsT" else False
    return _table_op(ctx, ex.float_lut_table("gelu_approximate" if approximate else "gelu", si, zi, so, zo))
