"""ELU on int8: the interpreter's float lookup table (EluPrepare: LUTPopulate with x < 0 ? expm1f(x) : x;
kernels/c/lut_float.c, numpy reference kernels/ref/float_lut.py), run by the table kernel.  Any quantization."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.activations import _table_op


def lower(ctx: OpContext) -> Lowered:
    (si, zi), (so, zo) = ctx.qparams(ctx.input(0)), ctx.qparams(ctx.output())
    return _table_op(ctx, ex.float_lut_table("elu", si, zi, so, zo))
