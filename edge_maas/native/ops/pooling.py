"""AVERAGE_POOL_2D and MAX_POOL_2D (int8; the interpreter requires equal input and output quantization)."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.quant import activation_range, check_window_params, same_padding


def _lower(ctx: OpContext, kind: str) -> Lowered:
    o = ctx.options("Pool2DOptions")
    x, y = ctx.input(0), ctx.output()
    if ctx.qparams(x) != ctx.qparams(y):
        raise ctx.fail("input and output quantization differ; the interpreter does not rescale in pooling")
    if len(x.shape) != 4:
        raise ctx.fail(f"input must be 4-D NHWC, got {list(x.shape)}")
    check_window_params(ctx.where, o.strideH, o.strideW, max_stride=None)  # pooling.cc: strides > 0 only
    b, h, w, c = x.shape
    _, oh, ow, oc = y.shape
    if oc != c:
        raise ctx.fail(f"output has {oc} channels, input {c}")
    pt = same_padding(h, o.filterHeight, o.strideH, 1, o.padding, oh, ctx.where)
    pl = same_padding(w, o.filterWidth, o.strideW, 1, o.padding, ow, ctx.where)
    lo, hi = activation_range(o.fusedActivationFunction, *ctx.qparams(y), ctx.where)
    inp, out = ctx.activation(x), ctx.activation(y)

    def make(_scratch):
        return ex.Pool(
            kind, inp, out, batch=b, in_h=h, in_w=w, channels=c, out_h=oh, out_w=ow,
            k_h=o.filterHeight, k_w=o.filterWidth, stride_h=o.strideH, stride_w=o.strideW,
            pad_top=pt, pad_left=pl, act_min=lo, act_max=hi,
        )  # fmt: skip

    return Lowered(make)


def lower_average(ctx: OpContext) -> Lowered:
    return _lower(ctx, "average")


def lower_max(ctx: OpContext) -> Lowered:
    return _lower(ctx, "max")
