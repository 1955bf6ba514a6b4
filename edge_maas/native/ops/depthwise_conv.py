"""DEPTHWISE_CONV_2D (int8, any depth multiplier).

The interpreter's optimized kernel requantizes output channels in blocks of 8
with ties rounded up and the last oc % 8 channels with scalar code (ties away
from zero); round_up_below reproduces that split."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.conv_common import depthwise_setup


def lower(ctx: OpContext) -> Lowered:
    op = depthwise_setup(ctx)
    o, g, st, oc, kh, kw = op.opts, op.geo, op.stage, op.out_c, op.k_h, op.k_w
    x, y = ctx.input(0), ctx.output()
    b, h, w, c, oh, ow, pt, pl = g.batch, g.in_h, g.in_w, g.in_c, g.out_h, g.out_w, g.pad_top, g.pad_left
    w16 = np.ascontiguousarray(st.weights.reshape(kh, kw, oc), dtype=np.int16)
    threads = max(1, ctx.threads)
    acc = threads * ((oc + 15) // 16 * 16)
    inp, out = ctx.activation(x), ctx.activation(y)

    def make(scratch: np.ndarray):
        return ex.DepthwiseConv2D(
            inp, out, w16, st.bias, st.mult, st.shift,
            batch=b, in_h=h, in_w=w, in_c=c, out_h=oh, out_w=ow, out_c=oc, depth_mult=oc // c, k_h=kh, k_w=kw,
            stride_h=o.strideH, stride_w=o.strideW, dil_h=o.dilationHFactor, dil_w=o.dilationWFactor,
            pad_top=pt, pad_left=pl, in_offset=st.in_offset, out_zp=st.out_zp,
            act_min=st.act_min, act_max=st.act_max, scratch=scratch.view(np.int32)[:acc], threads=threads,
            round_up_below=oc - oc % 8,
        )  # fmt: skip

    return Lowered(make, acc * 4)
