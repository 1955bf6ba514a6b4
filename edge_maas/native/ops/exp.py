"""EXP on int8: the interpreter's float lookup table (exp.cc Prepare: LUTPopulate with expf; kernels/c/lut_float.c,
numpy reference kernels/ref/float_lut.py), run by the table kernel.  Any quantization; inputs whose exp overflows
float give 127 (the interpreter's saturating conversion of inf)."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.activations import _table_op


def lower(ctx: OpContext) -> Lowered:
    (si, zi), (so, zo) = ctx.qparams(ctx.input(0)), ctx.qparams(ctx.output())
    return _table_op(ctx, ex.float_lut_table("exp", si, zi, so, zo))
