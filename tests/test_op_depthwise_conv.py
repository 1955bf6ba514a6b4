"""DEPTHWISE_CONV_2D: native == interpreter == numpy reference (depth multipliers, dilations,
strides, paddings, per-channel scales; channel counts around the 8-lane split), on every ISA in oneop.ISAS.

The x86 paths run the flat-row plan (kernels/c/depthwise_x86.h): rows of 32 (avx2, avxvnni) or 64 (avx512vnni)
byte chunks, two at a time and a last one alone, weights and constants repeating with the channel (periods
lcm(C, 8) and lcm(C, 64)), row buffers per stride phase, a ring of them per thread, on the VNNI paths
interleaved 4 taps to a 32-bit lane (two groups for 5 taps a row), one 64-bit rounding per lane; shapes the
plan refuses run the per-pixel AVX2 kernels.  The cases below name the part of it each one reaches."""

from __future__ import annotations

import numpy as np
import pytest
from arm import depthwise_3x3_rounding, depthwise_3x3_supported
from conftest import litert_semantics, skip_unless_litert_semantics
from edge_maas.kernels.ref.depthwise_conv import depthwise_conv2d
from edge_maas.kernels.ref.window import taps
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter, qscale

from edge_maas.native.quant import activation_range, conv_output_multipliers, same_padding


@litert_semantics("its DEPTHWISE_CONV_2D with depth multiplier 2 is 1 LSB off ai-edge-litert's")
@settings(max_examples=50, deadline=None)
@given(
    h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 40), dm=st.sampled_from([1, 1, 2, 3, 8]),
    k=st.integers(1, 4), stride=st.integers(1, 2), dil=st.integers(1, 2), same=st.booleans(),
    act=st.sampled_from([0, 1, 3]), in_zp=st.integers(-128, 127), out_zp=st.integers(-128, 127),
    seed=st.integers(0, 2**31),
)  # fmt: skip
def test_depthwise_conv2d(h, w, c, dm, k, stride, dil, same, act, in_zp, out_zp, seed):
    assume(_check(h, w, c, dm, k, stride, dil, same, act, in_zp, out_zp, seed))


# Every path of the kernel, on every ISA: depth multiplier 1 with >= 16 channels (16 lanes) and the groups of 8
# output channels (any depth multiplier; dm 1 under 16 channels), a group reading one input channel (dm 8), one
# or two (dm 12), up to 8 (dm 1, 2, 3); partial last groups; odd output widths (the last pixel of a row alone);
# the last input pixel of the tensor (no readable bytes after its channels); batch 2.
@litert_semantics("its DEPTHWISE_CONV_2D with depth multiplier 2 is 1 LSB off ai-edge-litert's")
@pytest.mark.parametrize("dm", [1, 2, 3, 8, 12])
@pytest.mark.parametrize("c", [1, 2, 3, 5, 8, 16, 17])
def test_depthwise_depth_multipliers_small_channels(c, dm):
    for i, (h, w, k, stride, dil, same, batch) in enumerate(
        [(7, 9, 3, 1, 1, True, 1), (6, 5, 3, 2, 1, False, 2), (9, 8, 2, 1, 2, True, 1), (5, 7, 1, 1, 1, False, 1)]
    ):
        zps = {"in_zp": -5 + 40 * i, "out_zp": 3 - 30 * i}
        assert _check(h, w, c, dm, k, stride, dil, same, act=i % 2, **zps, seed=c * 100 + dm * 7 + i, batch=batch)


# The plan's rows and channels, every ISA: long rows with an odd number of chunks and a partial last one (12 x 40
# x 24: 960 bytes a row, the constants' period 24 not a divisor of the chunk), stride 3 (three phase rows), a
# dilated 5x5 window (a ring of 9 row buffers, two groups of interleaved taps), 2 threads (a ring each), and windows the plan refuses (rows 4
# x 11 apart: more row buffers than it keeps) which run the per-pixel AVX2 kernels: dm 1 with >= 16 channels
# (dw_avx2_dm1) and the groups of 8 (dw_avx2_groups), whose 40-wide rows have pixels 4 at a time inside the
# image (a group gathering several channels, dm 2, and one channel broadcast, dm 8).
@pytest.mark.parametrize(
    "h, w, c, dm, k, stride, dil, same, threads",
    [
        (12, 40, 24, 1, 3, 1, 1, True, 1),
        (13, 17, 20, 1, 3, 3, 1, True, 1),
        (14, 15, 12, 1, 5, 1, 2, True, 1),
        (9, 11, 40, 1, 3, 2, 1, True, 2),
        (9, 8, 6, 2, 3, 1, 1, False, 2),
        (24, 40, 17, 1, 4, 1, 11, True, 1),
        (24, 40, 3, 2, 4, 1, 11, True, 1),
        (24, 40, 2, 8, 4, 1, 11, True, 1),
    ],
)  # fmt: skip
def test_depthwise_plan_rows(h, w, c, dm, k, stride, dil, same, threads):
    if dm == 2:
        skip_unless_litert_semantics("its DEPTHWISE_CONV_2D with depth multiplier 2 is 1 LSB off ai-edge-litert's")
    assert _check(h, w, c, dm, k, stride, dil, same, act=1, in_zp=-7, out_zp=5, seed=h * w + c, threads=threads)


# The requantization's rounding, every ISA: power-of-two scales (2^-2, 2^-3: a quarter or an eighth of the sums
# are ties) with small values so few outputs clamp; the interpreter rounds ties up in the blocks of 8 channels and
# away from zero in the c % 8 tail, and the 64-bit single rounding must give both.  "shifts": scales from 0.3 to
# 3.5 per channel, so multipliers shift left (by 1 or 2), not at all, or right by 1 (r = 0 lanes, which keep the
# shift by 32 of the odd lanes).  On aarch64 the interpreter runs the 16- and 40-channel stride-1 cases through its
# 3x3 NEON kernel, which shifts left after the high multiply (tests/arm.py depthwise_3x3_rounding): asserted there.
@litert_semantics("its DEPTHWISE_CONV_2D with 16 or more channels rounds these exact ties and shifted multipliers "
                  "differently from ai-edge-litert's (1 LSB at 0.6-25 % of the positions)")
@pytest.mark.parametrize("c", [5, 16, 21, 40])
@pytest.mark.parametrize("scales", ["ties", "shifts"])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_rounding(c, scales, stride):
    rng = np.random.default_rng(c * 10 + stride)
    if scales == "ties":
        w_s = [float(v) for v in rng.choice([2.0**-2, 2.0**-3], c)]
    else:
        w_s = [qscale(v) for v in rng.uniform(0.3, 3.5, c)]
    assert _check(9, 10, c, 1, 3, stride, 1, True, act=0, in_zp=3, out_zp=-2, seed=c, in_s=1.0, out_s=1.0,
                  w_s=w_s, w_max=2, x_max=12, b_max=40)  # fmt: skip


def _check(h, w, c, dm, k, stride, dil, same, act, in_zp, out_zp, seed, batch=1, threads=1, in_s=None, out_s=None,
           w_s=None, w_max=127, x_max=None, b_max=20000) -> bool:  # fmt: skip
    """Build the one-op model, compare native (every ISA) with the interpreter and the reference; False when the
    window leaves no output (nothing checked).  in_s, out_s, w_s: the scales (default random); w_max, x_max,
    b_max: bounds of the random weights, inputs (about the zero point) and bias."""
    rng = np.random.default_rng(seed)
    o, eff = c * dm, (k - 1) * dil + 1
    oh = (h + stride - 1) // stride if same else (h - eff + stride) // stride
    ow = (w + stride - 1) // stride if same else (w - eff + stride) // stride
    if oh < 1 or ow < 1:
        return False
    in_s = qscale(rng.uniform(0.01, 0.1)) if in_s is None else in_s
    out_s = qscale(rng.uniform(0.02, 0.5)) if out_s is None else out_s
    w_s = [qscale(v) for v in rng.uniform(0.001, 0.05, o)] if w_s is None else w_s
    weights = rng.integers(-w_max, w_max + 1, (1, k, k, o), dtype=np.int8)
    bias = rng.integers(-b_max, b_max, o).astype(np.int32)
    model = build_model(
        [
            T("x", (batch, h, w, c), "int8", [in_s], [in_zp]),
            T("w", (1, k, k, o), "int8", w_s, [0] * o, 3, weights),
            T("b", (o,), "int32", [in_s * s for s in w_s], [0] * o, 0, bias),
            T("y", (batch, oh, ow, o), "int8", [out_s], [out_zp]),
        ],
        [Op("DEPTHWISE_CONV_2D", ["x", "w", "b"], ["y"], "DepthwiseConv2DOptions", {
            "padding": 0 if same else 1, "strideH": stride, "strideW": stride, "depthMultiplier": dm,
            "dilationHFactor": dil, "dilationWFactor": dil, "fusedActivationFunction": act})],
        ["x"], ["y"],
    )  # fmt: skip
    x = int8_input(rng, (batch, h, w, c))
    if x_max is not None:
        x = np.clip(rng.integers(-x_max, x_max + 1, (batch, h, w, c)) + in_zp, -128, 127).astype(np.int8)
    mult, shift = conv_output_multipliers("test", in_s, w_s, out_s, o)
    lo, hi = activation_range(act, out_s, out_zp, "test")
    mode = 0 if same else 1
    pad = (same_padding(h, k, stride, dil, mode, oh, ""), same_padding(w, k, stride, dil, mode, ow, ""))
    want = depthwise_conv2d(x, weights, bias, mult, shift, depth_mult=dm, stride=(stride, stride),
                            dilation=(dil, dil), pad=pad, out_hw=(oh, ow), in_zp=in_zp, out_zp=out_zp,
                            act_min=lo, act_max=hi, round_up_below=o - o % 8)  # fmt: skip

    def aarch64(feed):  # the aarch64 interpreter: its 3x3 NEON kernel where it takes the shape, else the x86 bytes
        if not depthwise_3x3_supported((batch, h, w, c), (k, k), (stride, stride), (dil, dil), pad, dm, (oh, ow)):
            return {"y": want}
        acc = np.zeros((batch, oh, ow, o), np.int64) + bias
        xp = feed["x"].astype(np.int64) - in_zp  # dm 1: output channel j reads input channel j
        for i, j, y, xx, iy, ix in taps((h, w), (oh, ow), (k, k), (stride, stride), (dil, dil), pad):
            acc[:, y, xx, :] += xp[:, iy, ix, :] * weights[0, i, j, :].astype(np.int64)
        return {"y": depthwise_3x3_rounding(acc, mult, shift, out_zp, lo, hi)}

    got = native_matches_interpreter(model, [{"x": x}], threads=threads, arm=aarch64)[0]["y"]
    np.testing.assert_array_equal(got, want)
    return True
