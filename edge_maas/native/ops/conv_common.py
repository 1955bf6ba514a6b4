"""What CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED share: the checks on their shapes and
options, weights, bias and the output stage (used by the native and the accel lowerings)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_maas.native.lowering import OpContext
from edge_maas.native.quant import activation_range, check_window_params, conv_output_multipliers, pad16, same_padding
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


def _legacy(t) -> tuple[float, int]:
    """The interpreter's per-tensor view (TfLiteTensor.params) of a tensor's quantization: its one
    (scale, zero point), or (0, 0) when it has none or several (per-channel)."""
    q = t.quant
    return (q.scale[0], q.zero_point[0]) if q is not None and len(q.scale) == 1 else (0.0, 0)


def output_stage(ctx: OpContext, channels: int, fused: int, fully_connected: bool = False) -> OutputStage:
    """Weights + bias + per-channel requantization for an op (input, weights[, bias]) -> output."""
    x, w, b, y = ctx.input(0), ctx.input(1), ctx.input(2), ctx.output()
    in_scale, in_zp = ctx.qparams(x)
    out_scale, out_zp = ctx.qparams(y)
    if w.dtype != "int8" or w.quant is None:
        raise ctx.fail(f"weights are {w.dtype}{'' if w.quant else ' without quantization'}; int8 weights needed")
    weights = ctx.constant(w, "the weights")
    if any(z != 0 for z in w.quant.zero_point):
        raise ctx.fail("weights have a non-zero zero point (TFLite int8 weights are symmetric)")
    if w.quant.per_channel and not (0 <= w.quant.axis < len(w.shape) and w.shape[w.quant.axis] == channels):
        # PopulateConvolutionQuantizationParams: one scale per output channel, along the quantized dimension
        raise ctx.fail(f"{len(w.quant.scale)} weight scales along dimension {w.quant.axis} of {list(w.shape)} "
                       f"do not give one per output channel ({channels})")  # fmt: skip
    bias = np.zeros(channels, np.int32)
    bias_scales = None
    if b is not None:
        if b.dtype != "int32":
            raise ctx.fail(f"bias is {b.dtype}; int32 expected")
        if not fully_connected and _legacy(b)[1] != 0:  # conv.cc / depthwise_conv.cc Prepare
            raise ctx.fail(f"bias zero point {_legacy(b)[1]} must be 0")
        bias = ctx.constant(b, "the bias").reshape(-1)
        if bias.size != channels:
            raise ctx.fail(f"bias has {bias.size} values for {channels} channels")
        if b.quant is not None:
            bias_scales = b.quant.scale
    if fully_connected and not w.quant.per_channel:
        _check_fc_scales(ctx, in_scale, w.quant.scale[0], out_scale, b)
    # per-tensor FULLY_CONNECTED derives its multiplier from a float32 scale product (GetQuantizedConvolutionMultipler)
    float_product = fully_connected and not w.quant.per_channel
    mult, shift = conv_output_multipliers(ctx.where, in_scale, w.quant.scale, out_scale, channels, bias_scales,
                                          float_product)  # fmt: skip
    lo, hi = activation_range(fused, out_scale, out_zp, ctx.where)
    return OutputStage(weights, pad16(bias), mult, shift, -in_zp, out_zp, lo, hi)


def _check_fc_scales(ctx: OpContext, in_scale: float, w_scale: float, out_scale: float, b) -> None:
    """GetQuantizedConvolutionMultipler (per-tensor FULLY_CONNECTED): the scale product must not be
    negative and, with a bias, |in x w - bias scale| / out <= 0.02 (doubles of the float32 scales)."""
    if float(np.float32(in_scale) * np.float32(w_scale)) < 0:
        raise ctx.fail("input scale x weight scale is negative")
    if b is not None:
        diff = abs(float(in_scale) * float(w_scale) - _legacy(b)[0])
        if not diff / float(out_scale) <= 0.02:
            raise ctx.fail(f"|input scale x weight scale - bias scale| / output scale = {diff / out_scale:.6g} "
                           "exceeds 0.02 (the interpreter refuses this at prepare)")  # fmt: skip


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
    check_window_params(ctx.where, opts.strideH, opts.strideW, opts.dilationHFactor, opts.dilationWFactor)
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
    if ctx.input(2) is None:  # conv.cc Prepare: TF_LITE_ENSURE(context, has_bias)
        raise ctx.fail("CONV_2D has no bias; the interpreter requires one")
    _filter_rank(ctx, 4)
    oc, kh, kw, ic = ctx.input(1).shape
    g = geometry(ctx, kh, kw, o)
    if g.in_c != ic:
        raise ctx.fail(f"grouped convolution (input has {g.in_c} channels, filter {ic}) is not supported")
    return Windowed(o, g, output_stage(ctx, oc, o.fusedActivationFunction), oc, kh, kw)


def depthwise_setup(ctx: OpContext) -> Windowed:
    o = ctx.options("DepthwiseConv2DOptions")
    _filter_rank(ctx, 4)
    one, kh, kw, oc = ctx.input(1).shape
    g = geometry(ctx, kh, kw, o)
    if one != 1 or oc % g.in_c:
        raise ctx.fail(f"filter shape {list(ctx.input(1).shape)} does not fit {g.in_c} input channels")
    b = ctx.input(2)
    if b is not None and len(b.shape) != 1:
        raise ctx.fail(f"bias has shape {list(b.shape)}; the interpreter requires a 1-D bias")
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
    _filter_rank(ctx, 2)
    units, features = ctx.input(1).shape
    if x.size % features:
        raise ctx.fail(f"input of {x.size} values is not a multiple of {features} features")
    rows = x.size // features
    if y.size != rows * units:
        raise ctx.fail(f"output shape {list(y.shape)} does not hold {rows} x {units} values")
    return Dense(rows, features, units, output_stage(ctx, units, o.fusedActivationFunction, fully_connected=True))


def _filter_rank(ctx: OpContext, rank: int) -> None:
    w = ctx.input(1)
    if w is None or len(w.shape) != rank:
        raise ctx.fail(f"weights must be {rank}-D, got {list(w.shape) if w is not None else 'none'}")
