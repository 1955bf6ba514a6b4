"""SQUARED_DIFFERENCE on int8 with broadcasting (normalization and distance pieces of exported graphs):
kernels/c/squared_difference.c, numpy reference kernels/ref/squared_difference.py.  The multipliers as
squared_difference.cc Prepare derives them (left shift 7; inputs over twice the larger input scale; the output
over (2 max scale)^2 / 2^14); an output multiplier >= 1 is refused, where the interpreter aborts."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.binary import binary_layout
from edge_maas.native.quant import multiplier_below_one

LEFT_SHIFT = 7


def params(s1: float, s2: float, so: float, where: str) -> dict:
    twice_max = 2 * max(float(s1), float(s2))
    (m1, sh1), (m2, sh2) = (multiplier_below_one(float(s) / twice_max, where, f"input {k}") for k, s in ((1, s1), (2, s2)))
    mo, sho = multiplier_below_one(twice_max * twice_max / ((1 << 2 * LEFT_SHIFT) * float(so)), where, "output")
    return {"in1_mult": m1, "in1_shift": sh1, "in2_mult": m2, "in2_shift": sh2, "out_mult": mo, "out_shift": sho,
            "left_shift": LEFT_SHIFT}  # fmt: skip


def lower(ctx: OpContext) -> Lowered:
    if len(ctx.op.inputs) != 2:
        raise ctx.fail(f"SQUARED_DIFFERENCE takes 2 inputs, got {len(ctx.op.inputs)}")
    (s1, z1), (s2, z2), (so, zo) = (ctx.qparams(t) for t in (ctx.input(0), ctx.input(1), ctx.output()))
    p = params(s1, s2, so, ctx.where)
    in1, in2, out, dims, st1, st2 = binary_layout(ctx)
    return Lowered(lambda _s: ex.SquaredDifference(in1, in2, out, dims, st1, st2, in1_offset=-z1, in2_offset=-z2,
                                                   out_offset=zo, **p))  # fmt: skip
