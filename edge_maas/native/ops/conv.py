"""CONV_2D (int8, per-channel or per-tensor weights): requantizing GEMM, on im2col rows or (VNNI) indirect."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.conv_common import conv_setup


def lower(ctx: OpContext) -> Lowered:
    op = conv_setup(ctx)
    o, g, st, oc, kh, kw = op.opts, op.geo, op.stage, op.out_c, op.k_h, op.k_w
    x, y = ctx.input(0), ctx.output()
    b, h, w, c, oh, ow, pt, pl = g.batch, g.in_h, g.in_w, g.in_c, g.out_h, g.out_w, g.pad_top, g.pad_left
    packed = ex.pack_conv_weights(st.weights, o.dilationWFactor)
    rows = ex.conv_scratch_len(kh, kw, c, ctx.threads, batch=b, out_h=oh, out_w=ow, stride_h=o.strideH,
                               stride_w=o.strideW, dil_h=o.dilationHFactor, dil_w=o.dilationWFactor)
    inp, out = ctx.activation(x), ctx.activation(y)

    def make(scratch: np.ndarray):
        return ex.Conv2D(
            inp, out, packed, st.bias, st.mult, st.shift,
            batch=b, in_h=h, in_w=w, in_c=c, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw,
            stride_h=o.strideH, stride_w=o.strideW, dil_h=o.dilationHFactor, dil_w=o.dilationWFactor,
            pad_top=pt, pad_left=pl, in_offset=st.in_offset, out_zp=st.out_zp,
            act_min=st.act_min, act_max=st.act_max, scratch=scratch.view(np.int16)[:rows], threads=ctx.threads,
        )  # fmt: skip

    return Lowered(make, rows * 2)
