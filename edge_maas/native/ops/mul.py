"""MUL (int8): product of the offset inputs, requantized by in1_scale * in2_scale / out_scale.

The interpreter evaluates that multiplier in float32 (scales are floats) before
widening to double; on exact ties the difference shows, so we do the same."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.kernels.quantize_ref import quantize_multiplier
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.binary import binary_layout, fused_range


def lower(ctx: OpContext) -> Lowered:
    (s1, z1), (s2, z2), (so, zo) = (ctx.qparams(t) for t in (ctx.input(0), ctx.input(1), ctx.output()))
    f = np.float32
    m, sh = quantize_multiplier(float(f(f(s1) * f(s2)) / f(so)))
    lo, hi = fused_range(ctx, "MulOptions")
    in1, in2, out, dims, st1, st2 = binary_layout(ctx)

    def make(_scratch):
        return ex.Binary(
            "mul", in1, in2, out, dims, st1, st2, in1_offset=-z1, in2_offset=-z2, out_offset=zo,
            out_mult=m, out_shift=sh, act_min=lo, act_max=hi,
        )  # fmt: skip

    return Lowered(make)
