"""FULLY_CONNECTED (int8, per-tensor or per-channel weights, default weights format)."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.conv_common import fully_connected_setup


def lower(ctx: OpContext) -> Lowered:
    d = fully_connected_setup(ctx)
    rows, features, units, st = d.rows, d.features, d.units, d.stage
    x, y = ctx.input(0), ctx.output()
    packed = ex.pack_weights(st.weights)
    kp = (features + 1) & ~1
    inp, out = ctx.activation(x), ctx.activation(y)

    def make(scratch: np.ndarray):
        return ex.FullyConnected(
            inp.reshape(-1), out.reshape(-1), packed, st.bias, st.mult, st.shift,
            rows=rows, in_features=features, units=units, in_offset=st.in_offset, out_zp=st.out_zp,
            act_min=st.act_min, act_max=st.act_max, scratch=scratch.view(np.int16)[: rows * kp], threads=ctx.threads,
        )  # fmt: skip

    return Lowered(make, rows * kp * 2)
