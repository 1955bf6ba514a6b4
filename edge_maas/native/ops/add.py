"""ADD and SUB (int8), as TFLite: both inputs rescaled to 2^20 x twice the larger input scale, summed (SUB:
input 2's multiplier negated, as sub.cc sets it up), requantized.  One kernel (c/add.c) runs both; they differ
in the interpreter's int16 wrap-around, which its vectorized ADD has and its SUB has not (measured)."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.binary import binary_layout, fused_range
from edge_maas.native.quant import multiplier_below_one

LEFT_SHIFT = 20


def lower(ctx: OpContext) -> Lowered:
    return _lower(ctx, "add")


def lower_sub(ctx: OpContext) -> Lowered:
    return _lower(ctx, "sub")


def _lower(ctx: OpContext, kind: str) -> Lowered:
    (s1, z1), (s2, z2), (so, zo) = (ctx.qparams(t) for t in (ctx.input(0), ctx.input(1), ctx.output()))
    twice_max = 2 * max(s1, s2)
    # QuantizeMultiplierSmallerThanOneExp: the interpreter aborts unless each multiplier is in (0, 1)
    m1, sh1 = multiplier_below_one(s1 / twice_max, ctx.where, "input 1")
    m2, sh2 = multiplier_below_one(s2 / twice_max, ctx.where, "input 2")
    mo, sho = multiplier_below_one(twice_max / ((1 << LEFT_SHIFT) * so), ctx.where, "output")
    lo, hi = fused_range(ctx, "AddOptions" if kind == "add" else "SubOptions")
    in1, in2, out, dims, st1, st2 = binary_layout(ctx)
    m2 = -m2 if kind == "sub" else m2

    def make(_scratch):
        return ex.Binary(
            kind, in1, in2, out, dims, st1, st2, in1_offset=-z1, in2_offset=-z2, out_offset=zo,
            in1_mult=m1, in1_shift=sh1, in2_mult=m2, in2_shift=sh2, out_mult=mo, out_shift=sho,
            left_shift=LEFT_SHIFT, act_min=lo, act_max=hi,
        )  # fmt: skip

    return Lowered(make)
