"""What CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED share: the checks on their shapes and
options, weights, bias and the output stage (used by the native and the accel lowerings)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_maas.native.lowering import OpContext
from edge_maas.native.quant import activation_range, conv_output_multipliers, pad16, same_padding
from edge_maas.tflite.schema import schema


@dataclass
class OutputStage:
    weights: np.ndarray  # int8, as stored
    bias: np.ndarray  # int32, padded to 16
    mult: np.ndarray
    shift: np.ndarray
    in_offset: int
    out_zp: int
    act_min: int
    act_max: int


def output_stage(ctx: OpContext, channels: int, fused: int, fully_connected: bool = False) -> OutputStage:
    """Weights + bias + per-channel requantization for an op (input, weights[, bias]) -> output."""
    x, w, b, y = ctx.input(0), ctx.input(1), ctx.input(2), ctx.output()
    in_scale, in_zp = ctx.qparams(x)
    out_scale, out_zp = ctx.qparams(y)
    weights = ctx.constant(w, "the weights")
    if w.dtype != "int8" or w.quant is None:
        raise ctx.fail(f"weights are {w.dtype}{'' if w.quant else ' without quantization'}; int8 weights needed")
    if any(z != 0 for z in w.quant.zero_point):
        raise ctx.fail("weights have a non-zero zero point (TFLite int8 weights are symmetric)")
    bias = np.zeros(channels, np.int32)
    bias_scales = None
    if b is not None:
        if b.dtype != "int32":
            raise ctx.fail(f"bias is {b.dtype}; int32 expected")
        bias = ctx.constant(b, "the bias").reshape(-1)
        if bias.size != channels:
            raise ctx.fail(f"bias has {bias.size} values for {channels} channels")
        if b.quant is not None:
            bias_scales = b.quant.scale
    # per-tensor FULLY_CONNECTED derives its multiplier from a float32 scale product (GetQuantizedConvolutionMultipler)
    float_product = fully_connected and not w.quant.per_channel
    mult, shift = conv_output_multipliers(ctx.where, in_scale, w.quant.scale, out_scale, channels, bias_scales,
                                          float_product)  # fmt: skip
    lo, hi = activation_range(fused, out_scale, out_zp, ctx.where)
    return OutputStage(weights, pad16(bias), mult, shift, -in_zp, out_zp, lo, hi)


@dataclass
class Geometry:
    batch: int
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    pad_top: int
    pad_left: int


def geometry(ctx: OpContext, k_h: int, k_w: int, opts) -> Geometry:
    """NHWC sizes and leading padding of a windowed op (conv, depthwise), checked against its output."""
    x, y = ctx.input(0), ctx.output()
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise ctx.fail(f"input and output must be 4-D NHWC, got {list(x.shape)} -> {list(y.shape)}")
    b, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    pt = same_padding(h, k_h, opts.strideH, opts.dilationHFactor, opts.padding, oh, ctx.where)
    pl = same_padding(w, k_w, opts.strideW, opts.dilationWFactor, opts.padding, ow, ctx.where)
    return Geometry(b, h, w, c, oh, ow, pt, pl)


@dataclass
class Windowed:
    """A checked CONV_2D or DEPTHWISE_CONV_2D: options, geometry, output stage, filter size."""

    opts: object
    geo: Geometry
    stage: OutputStage
    out_c: int
    k_h: int
    k_w: int


def conv_setup(ctx: OpContext) -> Windowed:
    o = ctx.options("Conv2DOptions")
    oc, kh, kw, ic = ctx.input(1).shape
    g = geometry(ctx, kh, kw, o)
    if g.in_c != ic:
        raise ctx.fail(f"grouped convolution (input has {g.in_c} channels, filter {ic}) is not supported")
    return Windowed(o, g, output_stage(ctx, oc, o.fusedActivationFunction), oc, kh, kw)


def depthwise_setup(ctx: OpContext) -> Windowed:
    o = ctx.options("DepthwiseConv2DOptions")
    one, kh, kw, oc = ctx.input(1).shape
    g = geometry(ctx, kh, kw, o)
    if one != 1 or oc % g.in_c:
        raise ctx.fail(f"filter shape {list(ctx.input(1).shape)} does not fit {g.in_c} input channels")
    return Windowed(o, g, output_stage(ctx, oc, o.fusedActivationFunction), oc, kh, kw)


@dataclass
class Dense:
    """A checked FULLY_CONNECTED: rows x features -> rows x units."""

    rows: int
    features: int
    units: int
    stage: OutputStage


def fully_connected_setup(ctx: OpContext) -> Dense:
    o = ctx.options("FullyConnectedOptions")
    if o.weightsFormat != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
        raise ctx.fail("shuffled weights formats are not supported")
    x, y = ctx.input(0), ctx.output()
    units, features = ctx.input(1).shape
    if x.size % features:
        raise ctx.fail(f"input of {x.size} values is not a multiple of {features} features")
    rows = x.size // features
    if y.size != rows * units:
        raise ctx.fail(f"output shape {list(y.shape)} does not hold {rows} x {units} values")
    return Dense(rows, features, units, output_stage(ctx, units, o.fusedActivationFunction, fully_connected=True))
