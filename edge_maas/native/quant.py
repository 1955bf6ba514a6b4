"""Quantization parameters as TFLite's Prepare functions derive them."""

from __future__ import annotations

import math

import numpy as np

from edge_maas.errors import UnsupportedOpError
from edge_maas.kernels.quantize_ref import quantize_multiplier
from edge_maas.tflite.schema import schema

_ACT = schema.ActivationFunctionType


def pad16(values, dtype=np.int32) -> np.ndarray:
    """A 1-D array padded with zeros to a multiple of 16 (the kernels read whole vectors)."""
    v = np.asarray(values, dtype=dtype).ravel()
    out = np.zeros((v.size + 15) // 16 * 16, dtype=dtype)
    out[: v.size] = v
    return out


def multipliers(reals, n: int) -> tuple[np.ndarray, np.ndarray]:
    """QuantizeMultiplier of each real (broadcast to n channels) -> padded (mult, shift) arrays."""
    reals = list(reals) if len(reals) > 1 else [reals[0]] * n
    pairs = [quantize_multiplier(float(r)) for r in reals]
    return pad16([p[0] for p in pairs]), pad16([p[1] for p in pairs])


def tflite_round(x: float) -> int:
    """std::round: half away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


INT16_MAX = 2**15 - 1
_INT32_LIMIT = float(np.float32(2**31))  # float(INT32_MAX) and -float(INT32_MIN) as the interpreter compares them


def activation_range(fused: int, scale: float, zero_point: int, where: str) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 outputs.  Like the interpreter, refuses a bound
    (0, 6, -1, 1) whose round(bound / scale) (in float32) does not fit int32: a tiny output scale."""

    def q(f: float) -> int:
        tmp = tflite_round(float(np.float32(f) / np.float32(scale)))
        if not -_INT32_LIMIT <= tmp <= _INT32_LIMIT:
            raise UnsupportedOpError(
                f"{where}: fused activation bound {f} / output scale {scale:.6g} overflows int32 "
                "(the interpreter refuses this at prepare)"
            )
        return zero_point + tmp

    lo, hi = -128, 127
    if fused == _ACT.NONE:
        return lo, hi
    if fused == _ACT.RELU:
        return max(lo, q(0.0)), hi
    if fused == _ACT.RELU6:
        return max(lo, q(0.0)), min(hi, q(6.0))
    if fused == _ACT.RELU_N1_TO_1:
        return max(lo, q(-1.0)), min(hi, q(1.0))
    raise UnsupportedOpError(f"{where}: fused activation {fused} is not supported on int8 (only RELU, RELU6, RELU_N1_TO_1)")


def conv_output_multipliers(where: str, in_scale: float, w_scales, out_scale: float, n: int, bias_scales=None,
                            float_product: bool = False):  # fmt: skip
    """Per-channel real multiplier in_scale * w_scale / out_scale, in double as TFLite, except
    that per-tensor FULLY_CONNECTED (float_product) multiplies the two scales in float32 first.

    A bias scale must equal in_scale * w_scale (relative 1e-6): the interpreter does not check
    int8 models, but a bias quantized at another scale gives silently wrong outputs, so we refuse."""
    if len(w_scales) not in (1, n):
        raise UnsupportedOpError(f"{where}: {len(w_scales)} weight scales for {n} output channels")
    if bias_scales is not None:
        bs = list(bias_scales) if len(bias_scales) > 1 else [bias_scales[0]] * len(w_scales)
        for c, (ws, b) in enumerate(zip(w_scales, bs)):
            prod = in_scale * ws
            if abs(prod - b) > 1e-6 * min(prod, b):
                raise UnsupportedOpError(
                    f"{where}: bias scale {b:.6g} (channel {c}) does not match input scale x weight scale = {prod:.6g}"
                )
    if float_product:
        return multipliers([float(np.float32(in_scale) * np.float32(ws)) / out_scale for ws in w_scales], n)
    return multipliers([in_scale * ws / out_scale for ws in w_scales], n)


def check_window_params(where: str, stride_h: int, stride_w: int, dil_h: int = 1, dil_w: int = 1,
                        max_stride: int | None = INT16_MAX) -> None:
    """Strides in 1..max_stride and dilations >= 1, as conv.cc, depthwise_conv.cc and pooling.cc Prepare."""
    for name, v in (("stride_h", stride_h), ("stride_w", stride_w)):
        if v <= 0 or (max_stride is not None and v > max_stride):
            bound = f"1..{max_stride}" if max_stride is not None else ">= 1"
            raise UnsupportedOpError(f"{where}: {name} {v} out of range ({bound})")
    for name, v in (("dilation_h", dil_h), ("dilation_w", dil_w)):
        if v <= 0:
            raise UnsupportedOpError(f"{where}: {name} {v} out of range (>= 1)")


def multiplier_below_one(real: float, where: str, what: str) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: the interpreter aborts (TFLITE_CHECK) unless 0 < real < 1
    and the rounded multiplier keeps a shift <= 0; we refuse the same models with an error."""
    if not 0.0 < real < 1.0:
        raise UnsupportedOpError(f"{where}: {what} multiplier {real:.6g} is not in (0, 1); the interpreter refuses it")
    mult, shift = quantize_multiplier(real)
    if shift > 0:
        raise UnsupportedOpError(f"{where}: {what} multiplier {real:.6g} rounds up to 1; the interpreter refuses it")
    return mult, shift


def same_padding(in_size: int, k: int, stride: int, dilation: int, padding: int, out_size: int, where: str) -> int:
    """ComputePaddingHeightWidth: the leading pad; also checks the output size."""
    eff = (k - 1) * dilation + 1
    if padding == schema.Padding.SAME:
        expect = (in_size + stride - 1) // stride
    elif padding == schema.Padding.VALID:
        expect = (in_size - eff + stride) // stride
    else:
        raise UnsupportedOpError(f"{where}: padding mode {padding} is not supported")
    if expect != out_size:
        raise UnsupportedOpError(f"{where}: output size {out_size} does not match the computed {expect}")
    total = (out_size - 1) * stride + eff - in_size
    return max(total, 0) // 2
