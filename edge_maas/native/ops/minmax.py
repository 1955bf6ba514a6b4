"""MAXIMUM and MINIMUM on int8 with broadcasting (PyTorch clamp exports, hard-sigmoid pieces).

maximum_minimum.cc compares the stored int8 values without rescaling; that is only the real maximum when
the inputs and the output share one quantization, which converters ensure and which is required here."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.binary import binary_layout


def lower(ctx: OpContext) -> Lowered:
    if len(ctx.op.inputs) != 2:
        raise ctx.fail(f"{ctx.op.op} takes 2 inputs, got {len(ctx.op.inputs)}")
    a, b, y = ctx.input(0), ctx.input(1), ctx.output()
    qs = {ctx.qparams(t) for t in (a, b, y)}
    if len(qs) != 1:
        raise ctx.fail("inputs and output differ in quantization; the int8 kernel compares stored values")
    in1, in2, out, dims, st1, st2 = binary_layout(ctx)
    kind = "maximum" if ctx.op.op == "MAXIMUM" else "minimum"
    return Lowered(lambda _s: ex.MinMax(kind, in1, in2, out, dims, st1, st2))
