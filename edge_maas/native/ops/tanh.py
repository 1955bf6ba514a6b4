"""TANH on int8: the interpreter's float lookup table (LUTPopulate with std::tanh in float, kernels/c/lut_float.c;
numpy reference kernels/ref/float_lut.py), run by the table kernel.  Any output quantization: the interpreter's
int8 TANH (its generic optimized kernel, the registered one) constrains neither scale nor zero point."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.activations import _table_op


def lower(ctx: OpContext) -> Lowered:
    (si, zi), (so, zo) = ctx.qparams(ctx.input(0)), ctx.qparams(ctx.output())
    return _table_op(ctx, ex.float_lut_table("tanh", si, zi, so, zo))
