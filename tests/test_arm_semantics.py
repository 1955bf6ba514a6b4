"""One semantics on every CPU (issue 12): the native executor's platform-independent parts give the x86 bytes, and
the interpreter's aarch64 departures are what docs/native.md says, asserted on the interpreter itself.

Runs everywhere; on x86-64 the interpreter tests assert the x86 (double-rounding) side, on aarch64 (scripts/
test_arm.sh, under qemu) the documented departure, exactly, and that it does occur."""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction

import numpy as np
import pytest
from arm import (
    AARCH64,
    depthwise_3x3_rounding,
    depthwise_3x3_supported,
    dequantize_aarch64,
    log_softmax_aarch64,
    ruy_single_rounding,
)
from conftest import litert_semantics
from edge_maas.kernels import executor as ex
from edge_maas.kernels import quantize_ref
from edge_maas.kernels.ref.depthwise_conv import depthwise_conv2d
from edge_maas.kernels.ref.fully_connected import fully_connected
from edge_maas.kernels.ref.hard_swish import hard_swish, params
from edge_maas.kernels.ref.log_softmax import log_softmax
from edge_maas.kernels.ref.window import taps
from oneop import Op, T, build_model, qscale

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.backends.native import NativeBackend
from edge_maas.native.quant import conv_output_multipliers, same_padding

ALL = np.arange(-128, 128, dtype=np.int8)

# sha256 of every float table and int8 table below, computed on x86-64 (glibc 2.36, the interpreter's golden
# machine).  The tables come from libm's expf and roundf (kernels/c/lut.c, softmax.c) and from numpy integer code
# (hard_swish): the same digest on aarch64 shows the libm / compiler of that platform give the same bytes.
TABLES_SHA256 = "1a049654c6e70df6d0dcc7fa8ab0a1047cc6f388f6ba018cc09979aa03c7ee86"


def _tables() -> bytes:
    """Softmax exp tables, LOGISTIC and HARD_SWISH int8 tables over a grid of scales, zero points and betas."""
    out = []
    for s in np.geomspace(0.0005, 0.6, 101).astype(np.float32):
        for beta in (1.0, 0.5, 2.0, 0.3):
            out.append(ex.softmax_table(float(s), beta).tobytes())
        for zi in (-128, -37, 0, 127):
            out.append(np.asarray(ex.logistic_table(float(s), zi, 1 / 256, -128)).tobytes())
            so = qscale(float(s) * 1.7 + 0.001)
            out.append(hard_swish(ALL, zi, -3, params(float(s), so)).tobytes())
    return b"".join(out)


def test_tables_are_the_x86_bytes():
    """expf / roundf and float order in the table builders: no platform dependence (the libm check of issue 12)."""
    assert hashlib.sha256(_tables()).hexdigest() == TABLES_SHA256


def test_the_dissected_conv_position():
    """Issue 12's conv case: accumulator 369, multiplier 1489315878, shift -9 (exact value 0.49982): the x86
    formula (double rounding) gives 1, ruy's single rounding 0."""
    acc = np.array([[369]], np.int64)
    assert quantize_ref.multiply_by_quantized_multiplier(acc, 1489315878, -9)[0, 0] == 1
    assert ruy_single_rounding(acc, [1489315878], [-9], 0)[0, 0] == 0


@pytest.mark.parametrize("seed", range(6))
def test_single_rounding_is_one_exact_rounding(seed):
    """ruy_single_rounding (ruy's sshl / sqdmulh / srshl, modelled instruction by instruction) == the exact rational
    acc * mult / 2^(31 - shift) rounded once, ties up, for right shifts, none and left shifts; never more than 1
    away from the x86 double rounding, and equal to it where there is no right shift."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-3000, 3000, (2000, 1))
    mult, shift = int(rng.integers(2**30, 2**31)), [-14, -9, -1, 0, 1, 3][seed]
    exact = [math.floor(Fraction(a * mult, 2 ** (31 - shift)) + Fraction(1, 2)) for a in acc[:, 0].tolist()]
    got = ruy_single_rounding(acc, [mult], [shift], 0)
    np.testing.assert_array_equal(got[:, 0], np.clip(exact, -128, 127))
    double = quantize_ref.multiply_by_quantized_multiplier(acc.astype(np.int32), mult, shift)[:, 0]
    assert np.abs(np.asarray(exact) - double).max() <= 1
    if shift >= 0:
        np.testing.assert_array_equal(got[:, 0], np.clip(double, -128, 127))


def _fc_model(n: int, in_s: float, w_s: float, out_s: float, weights, bias):
    return build_model(
        [T("x", (256, 1), "int8", [in_s], [0]), T("w", (n, 1), "int8", [w_s], [0], 0, weights),
         T("b", (n,), "int32", [in_s * w_s], [0], 0, bias), T("y", (256, n), "int8", [out_s], [0])],
        [Op("FULLY_CONNECTED", ["x", "w", "b"], ["y"], "FullyConnectedOptions", {})], ["x"], ["y"],
    )  # fmt: skip


@pytest.mark.parametrize("w_s,w_max,shift", [(0.01, 127, -6), (0.7, 1, 0), (1.3, 1, 1), (2.6, 1, 2)])
def test_fully_connected_output_stage_per_cpu(w_s, w_max, shift):
    """The interpreter's FULLY_CONNECTED on every int8 input times 40 weights: on x86 exactly the double-rounding
    reference (native's bytes), on aarch64 exactly ruy's single rounding, which departs at the ties of the first
    rounding (asserted to occur) where the multiplier shifts right; with shift 0 or a left shift (ruy's `sshl` by
    shift + 1 first) the two are the same bytes (asserted), weights of +-1 keeping the outputs off the clamp.
    Native gives the x86 bytes on both."""
    rng = np.random.default_rng(7)
    n = 40
    in_s, w_s, out_s = qscale(0.05), qscale(w_s), qscale(0.05)
    weights = rng.integers(-w_max, w_max + 1, (n, 1), dtype=np.int8)
    bias = rng.integers(-3000, 3000, n).astype(np.int32) if w_max > 1 else rng.integers(-40, 40, n).astype(np.int32)
    model = _fc_model(n, in_s, w_s, out_s, weights, bias)
    x = ALL[:, None]
    mult, shifts = conv_output_multipliers("test", in_s, [w_s], out_s, n, float_product=True)
    assert int(shifts[0]) == shift
    acc = x.astype(np.int64) @ weights.astype(np.int64).T + bias
    double = fully_connected(x, weights, bias, mult, shifts, in_zp=0, out_zp=0)
    single = ruy_single_rounding(acc, mult, shifts, 0)
    if shift < 0:
        assert (double != single).sum() > 0, "no position where the two roundings differ: the test shows nothing"
    else:
        assert (np.abs(double.astype(int)) < 127).mean() > 0.3, "mostly clamped: the test shows little"
        np.testing.assert_array_equal(single, double)
    interp = LiteRTBackend(model, xnnpack=False).run({"x": x})["y"]
    np.testing.assert_array_equal(NativeBackend(model).run({"x": x})["y"], double)
    np.testing.assert_array_equal(interp, single if AARCH64 else double)


@litert_semantics("its DEQUANTIZE is 1 float32 ulp off ai-edge-litert's at some values (test_kernels_quantize)")
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_dequantize_per_cpu(dtype):
    """The interpreter's DEQUANTIZE on every int8 (uint8) value (32 blocks of 8, a tail of 3): on x86 q*s - zp*s
    in the blocks (kernels/quantize_ref.py), on aarch64 the same fused (one rounding), departing at some values
    (asserted); uint8 takes the same blocks."""
    q = np.concatenate([ALL, ALL[:3]]).view(np.uint8) if dtype == "uint8" else np.concatenate([ALL, ALL[:3]])
    departs = 0
    shift = 128 if dtype == "uint8" else 0
    for scale, zp in ((0.0370, 17 + shift), (0.1234567, -101 + shift), (0.00731, 64 + shift), (1.5e-3, -7 + shift)):
        model = build_model([T("x", (1, q.size), dtype, [scale], [zp]), T("y", (1, q.size), "float32")],
                            [Op("DEQUANTIZE", ["x"], ["y"])], ["x"], ["y"])  # fmt: skip
        interp = LiteRTBackend(model, xnnpack=False).run({"x": q[None]})["y"][0]
        x86, arm = quantize_ref.dequantize(q, scale, zp), dequantize_aarch64(q, scale, zp)
        np.testing.assert_array_equal(NativeBackend(model).run({"x": q[None]})["y"][0], x86)
        np.testing.assert_array_equal(interp, arm if AARCH64 else x86)
        departs += int((x86 != arm).sum())
    assert departs > 0, "the two formulas agree on every value: the test shows nothing"


def _depthwise(h, w, c, stride, same, seed):
    """A one-op 3x3 DEPTHWISE_CONV_2D (depth multiplier 1) with per-channel scales 0.3-3.5 (multipliers shifting
    right by 1, not at all, or left by 1-2), small weights, inputs and bias (outputs off the clamp): model, feed,
    accumulators, multipliers, shifts, the x86 reference and what the 3x3 kernel's output stage gives."""
    rng = np.random.default_rng(seed)
    w_s = [qscale(v) for v in rng.uniform(0.3, 3.5, c)]
    oh, ow = ((h + stride - 1) // stride, (w + stride - 1) // stride) if same else ((h - 3) // stride + 1, (w - 3) // stride + 1)
    weights = rng.integers(-2, 3, (1, 3, 3, c), dtype=np.int8)
    bias = rng.integers(-40, 40, c).astype(np.int32)
    x = rng.integers(-12, 13, (1, h, w, c)).astype(np.int8)
    model = build_model(
        [T("x", (1, h, w, c), "int8", [1.0], [0]), T("w", (1, 3, 3, c), "int8", w_s, [0] * c, 3, weights),
         T("b", (c,), "int32", w_s, [0] * c, 0, bias), T("y", (1, oh, ow, c), "int8", [1.0], [-2])],
        [Op("DEPTHWISE_CONV_2D", ["x", "w", "b"], ["y"], "DepthwiseConv2DOptions",
            {"padding": 0 if same else 1, "strideH": stride, "strideW": stride, "depthMultiplier": 1})],
        ["x"], ["y"],
    )  # fmt: skip
    mult, shift = conv_output_multipliers("test", 1.0, w_s, 1.0, c)
    pad = tuple(same_padding(n, 3, stride, 1, 0 if same else 1, o, "") for n, o in ((h, oh), (w, ow)))
    acc = np.zeros((1, oh, ow, c), np.int64) + bias
    for i, j, y, xx, iy, ix in taps((h, w), (oh, ow), (3, 3), (stride, stride), (1, 1), pad):
        acc[:, y, xx, :] += x[:, iy, ix, :].astype(np.int64) * weights[0, i, j, :].astype(np.int64)
    x86 = depthwise_conv2d(x, weights, bias, mult, shift, stride=(stride, stride), pad=pad, out_hw=(oh, ow), in_zp=0,
                           out_zp=-2, round_up_below=c - c % 8)  # fmt: skip
    supported = depthwise_3x3_supported(x.shape, (3, 3), (stride, stride), (1, 1), pad, 1, (oh, ow))
    return model, x, x86, depthwise_3x3_rounding(acc, mult, shift, -2), supported


@litert_semantics("its DEPTHWISE_CONV_2D with 16 or more channels rounds multipliers that shift left differently "
                  "from ai-edge-litert's (as in test_op_depthwise_conv's test_depthwise_rounding)")
@pytest.mark.parametrize(
    "h,w,c,stride,same,supported",
    [(9, 10, 16, 1, True, True), (9, 10, 16, 1, False, True), (11, 11, 24, 2, True, True), (9, 10, 16, 2, True, False),
     (10, 10, 16, 2, True, False), (9, 10, 12, 1, True, False), (1, 1, 8, 1, True, True), (1, 6, 8, 1, True, False)],
)  # fmt: skip
def test_depthwise_3x3_kernel_per_cpu(h, w, c, stride, same, supported):
    """The interpreter's DEPTHWISE_CONV_2D with multipliers shifting left: on x86 exactly native's bytes (the shift
    before the high multiply); on aarch64, where TFLite's Fast3x3FilterKernelSupported takes the shape (3x3, depth
    multiplier 1, channels a multiple of 8, stride 1 or 2, equal pads of 0 or 1 that the window fits), exactly
    the 3x3 NEON kernel's output stage (the shift after it; asserted to depart), elsewhere the x86 bytes."""
    model, x, x86, fast, sup = _depthwise(h, w, c, stride, same, seed=h * w + c + stride)
    assert sup == supported
    if supported and h > 1:
        assert (x86 != fast).sum() > 0, "the two output stages agree everywhere: the test shows nothing"
    interp = LiteRTBackend(model, xnnpack=False).run({"x": x})["y"]
    np.testing.assert_array_equal(NativeBackend(model).run({"x": x})["y"], x86)
    np.testing.assert_array_equal(interp, fast if AARCH64 and supported else x86)


# rows where the aarch64 kernel's fused multiply-adds move an output (found comparing the two formulas on the host;
# (shape, input scale, seed), x = default_rng(seed).integers(-128, 128, shape)): precomputed's fma decides the first
# two, log_prob's the next two, both the fifth, only the two together the last
LOG_SOFTMAX_ROWS = [((8, 39), 1.032589254403566, 82099234), ((8, 37), 1.1648423466569022, 1153928757),
                    ((8, 24), 1.7277160391111155, 1876957852), ((8, 19), 0.6138319000267703, 1071022042),
                    ((8, 49), 1.2744783367384933, 1167885393), ((8, 50), 1.7163979764205295, 1372278507)]  # fmt: skip


def test_log_softmax_per_cpu():
    """The interpreter's int8 LOG_SOFTMAX on rows picked for it: on x86 exactly kernels/ref/log_softmax.py (native's
    bytes), on aarch64 exactly log_softmax_aarch64 (both float expressions fused), which departs there (asserted)."""
    departs = 0
    for shape, si, seed in LOG_SOFTMAX_ROWS:
        si = qscale(si)
        x = np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)
        model = build_model([T("x", shape, "int8", [si], [0]), T("y", shape, "int8", [16 / 256], [127])],
                            [Op("LOG_SOFTMAX", ["x"], ["y"])], ["x"], ["y"])  # fmt: skip
        table = ex.softmax_table(si, 1.0)
        x86, arm = log_softmax(x, table, si, 16 / 256, 127), log_softmax_aarch64(x, table, si, 16 / 256, 127)
        np.testing.assert_array_equal(NativeBackend(model).run({"x": x})["y"], x86)
        np.testing.assert_array_equal(LiteRTBackend(model, xnnpack=False).run({"x": x})["y"], arm if AARCH64 else x86)
        departs += int((x86 != arm).sum())
    assert departs >= len(LOG_SOFTMAX_ROWS), "the two formulas agree on these rows: the test shows nothing"
