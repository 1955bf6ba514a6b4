"""CONV_2D: native kernel == interpreter == numpy reference, over shapes, strides,
dilations, paddings, per-channel and per-tensor scales, zero points, activations, on every ISA in oneop.ISAS."""

from __future__ import annotations

import numpy as np
import pytest
from arm import ruy_single_rounding
from edge_maas.kernels.ref.conv import conv2d
from edge_maas.kernels.ref.window import taps
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter, qscale

from edge_maas.native.quant import activation_range, conv_output_multipliers, same_padding


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 24), o=st.integers(1, 40),
    kh=st.integers(1, 4), kw=st.integers(1, 4), stride=st.integers(1, 3), dil=st.integers(1, 2),
    same=st.booleans(), act=st.sampled_from([0, 1, 3]), per_channel=st.booleans(),
    in_zp=st.integers(-128, 127), out_zp=st.integers(-128, 127), batch=st.integers(1, 2),
    seed=st.integers(0, 2**31),
)  # fmt: skip
def test_conv2d(h, w, c, o, kh, kw, stride, dil, same, act, per_channel, in_zp, out_zp, batch, seed):
    assume(_check(h, w, c, o, kh, kw, stride, dil, same, act, per_channel, in_zp, out_zp, batch, seed))


# Small channel counts on every ISA, through each path of the kernel: the direct AVX2 conv (even input channels,
# k_h input rows fitting the scratch), im2col + GEMM (odd channels; rows too wide for the direct path: 3 x 200 x 2
# int16 > 64 rows x 18), output channels filling a 16-wide panel partly, wholly, and spilling into a second;
# output widths that leave 1-3 pixels after the 4-pixel tiles; padding, stride 2, dilation 2, batch 2.
@pytest.mark.parametrize("o", [1, 8, 16, 17])
@pytest.mark.parametrize("c", [1, 2, 3, 4, 8, 16])
def test_conv2d_small_channels(c, o):
    for i, (h, w, k, stride, dil, same, batch) in enumerate(
        [(9, 11, 3, 1, 1, True, 1), (8, 7, 3, 2, 1, True, 2), (7, 10, 3, 1, 2, False, 1), (4, 200, 3, 1, 1, True, 1),
         (6, 6, 2, 1, 1, False, 1)]
    ):  # fmt: skip
        zps = {"in_zp": (7 + 61 * i) % 256 - 128, "out_zp": (119 + 83 * i) % 256 - 128}
        assert _check(h, w, c, o, k, k, stride, dil, same, act=i % 2, per_channel=i != 1, **zps, batch=batch,
                      seed=c * 1000 + o * 10 + i)  # fmt: skip


# The VNNI paths' indirect GEMM (every conv there) on every ISA: output channels making 1-5 panels of 16 (tiles
# of 16x1, 8x2, 6x3, 5x4, 5x4 then 16x1 on AVX-512; 6x2 and 12x1 on AVX-VNNI), 99 / 56 / 30 pixels (two chunks of
# rows, 4-row and single-row tails after the big tiles), filter rows of whole 4-byte groups (4 and 16 channels) or
# zero-padded to them (3 and 5 channels: the conv section of the packed weights), one run per tap (dilation 2),
# a 1x1 stride-2 conv, batch 2.
@pytest.mark.parametrize("o", [16, 32, 48, 64, 80])
@pytest.mark.parametrize(
    "c,k,stride,dil,hw,batch",
    [(4, 3, 1, 1, (9, 11), 1), (3, 3, 1, 1, (9, 11), 1), (5, 3, 2, 1, (15, 13), 1), (16, 3, 1, 2, (7, 8), 1),
     (3, 2, 1, 2, (7, 8), 2), (16, 1, 2, 1, (11, 10), 1)],
)  # fmt: skip
def test_conv2d_vnni_tiles(o, c, k, stride, dil, hw, batch):
    zps = {"in_zp": (o * 7 + c) % 256 - 128, "out_zp": (o * 3 + k) % 256 - 128}
    assert _check(*hw, c, o, k, k, stride, dil, True, 1, True, **zps, batch=batch, seed=o * 100 + c)


@pytest.mark.parametrize("c,k", [(16, 1), (3, 3)])
def test_conv2d_output_shifts(c, k):
    """Multipliers whose shift is 0 and -1 (the VNNI output stages' one-step form at its edges: no right shift,
    and 2^(30 + 1)), and positive (a left shift: the general form), a panel of 16 channels each, then 8 more of
    the -1 kind in a partial panel; every ISA.  On aarch64 the interpreter's ruy kernel takes shift 0 and +1
    through its `sshl` by shift + 1 (tests/arm.py ruy_single_rounding): the x86 bytes there, its single rounding
    at shift -1."""
    ratios = [0.7] * 16 + [0.3] * 16 + [1.6] * 16 + [0.27] * 8  # in_s * w_s / out_s
    in_s, out_s = qscale(0.05), qscale(0.1)
    assert _check(9, 10, c, len(ratios), k, k, 1, 1, True, 0, True, -3, 4, 1, seed=5,
                  scales=(in_s, [qscale(r * out_s / in_s) for r in ratios], out_s))  # fmt: skip


@pytest.mark.parametrize("act", [2, 3])  # RELU_N1_TO_1, RELU6: clamp bounds inside int8
@pytest.mark.parametrize("c,k", [(16, 1), (8, 3), (3, 3)])
def test_conv2d_output_stage_row_groups(c, k, act):
    """The x86 output stages that narrow rows together (rq256_store16x2: pairs of rows on AVX2 / AVX-VNNI;
    rows4_512: four rows on AVX-512, the zero point folded into the rounding constant where every lane of a panel
    shifts right by 1..23): clamp bounds inside int8, 63 rows (pairs, quads and single rows left over), a panel
    with lanes shifting right by 24 (the per-row form), a whole panel, a partial one; pointwise, direct and
    im2col paths; every ISA."""
    ratios = [0.3] * 8 + [1.5 * 2.0**-25] * 8 + [0.3] * 16 + [0.011] * 5  # in_s * w_s / out_s
    in_s, out_s = qscale(0.05), qscale(0.05)
    assert _check(7, 9, c, len(ratios), k, k, 1, 1, True, act, True, -3, 4, 1, seed=6 + act,
                  scales=(in_s, [qscale(r * out_s / in_s) for r in ratios], out_s))  # fmt: skip


@pytest.mark.parametrize("act", [2, 3])  # clamp bounds inside int8
@pytest.mark.parametrize("ratio", [0.3, 0.7])  # every lane shifting right (the zero point folded) / shift 0
@pytest.mark.parametrize("c,k", [(16, 1), (8, 3), (3, 3)])
def test_conv2d_eight_channel_panels(c, k, act, ratio):
    """Exactly 8 output channels (MobileNetV2's projections): the AVX2 / AVX-VNNI output stage narrows two rows' 8
    channels together (rq256_store8x2), with and without the zero point folded; 63 rows (pairs and one left over),
    per-channel multipliers; pointwise, direct and im2col paths; every ISA."""
    ratios = [ratio * (1 + i / 32) for i in range(8)]  # 0.7 x 1.22 < 1: shift 0 on every lane
    in_s, out_s = qscale(0.05), qscale(0.05)
    assert _check(7, 9, c, 8, k, k, 1, 1, True, act, True, -3, 4, 1, seed=11 + act,
                  scales=(in_s, [qscale(r * out_s / in_s) for r in ratios], out_s))  # fmt: skip


# AVX2's padded-row conv (conv_rows_avx2): filter rows of an odd count of taps (read as int16 pairs, one past the
# row against a zero weight: the weights' own section), non-square windows, stride 2, 1x1 stride 2, SAME padding
# wider than the window reaches, batch 2, 2 threads (each its lines); every ISA.
@pytest.mark.parametrize("c,kh,kw,stride", [(3, 3, 3, 2), (5, 1, 3, 1), (1, 3, 5, 1), (3, 2, 3, 2), (7, 3, 1, 1),
                                            (3, 1, 1, 2), (2, 5, 5, 1)])  # fmt: skip
def test_conv2d_padded_rows(c, kh, kw, stride):
    for threads in (1, 2):
        assert _check(11, 13, c, 20, kh, kw, stride, 1, True, 1, True, -7, 5, 2, seed=c * 100 + kh * 10 + kw,
                      threads=threads)  # fmt: skip


def test_conv2d_two_threads_border_rows_of_odd_channels():
    """im2col's AVX2 widening may write 16 lanes past a 3-channel run; on the last row of a thread's chunk that
    reached the next thread's rows (a race: ResNet-8's stem differed from the interpreter in 12 of 40 runs with
    2 threads).  Many feeds, 2 threads, every ISA."""
    assert _check(32, 32, 3, 16, 3, 3, 1, 1, True, 1, True, -5, 3, 1, seed=11, threads=2, feeds=24)


def _check(h, w, c, o, kh, kw, stride, dil, same, act, per_channel, in_zp, out_zp, batch, seed, threads=1,
           feeds=1, scales=None) -> bool:  # fmt: skip
    """Build the one-op model, compare native (every ISA) with the interpreter and the reference; False when the
    window leaves no output (nothing checked).  scales: (input, [weight per channel], output), else random."""
    rng = np.random.default_rng(seed)
    eff_h, eff_w = (kh - 1) * dil + 1, (kw - 1) * dil + 1
    oh = (h + stride - 1) // stride if same else (h - eff_h + stride) // stride
    ow = (w + stride - 1) // stride if same else (w - eff_w + stride) // stride
    if oh < 1 or ow < 1:
        return False
    in_s, out_s = qscale(rng.uniform(0.01, 0.1)), qscale(rng.uniform(0.02, 0.5))
    w_s = [qscale(v) for v in rng.uniform(0.001, 0.05, o if per_channel else 1)]
    if scales is not None:
        in_s, w_s, out_s = scales
    weights = rng.integers(-127, 128, (o, kh, kw, c), dtype=np.int8)
    bias = rng.integers(-20000, 20000, o).astype(np.int32)
    model = build_model(
        [
            T("x", (batch, h, w, c), "int8", [in_s], [in_zp]),
            T("w", (o, kh, kw, c), "int8", w_s, [0] * len(w_s), 0, weights),
            T("b", (o,), "int32", [in_s * s for s in w_s], [0] * len(w_s), 0, bias),
            T("y", (batch, oh, ow, o), "int8", [out_s], [out_zp]),
        ],
        [Op("CONV_2D", ["x", "w", "b"], ["y"], "Conv2DOptions", {
            "padding": 0 if same else 1, "strideH": stride, "strideW": stride, "dilationHFactor": dil,
            "dilationWFactor": dil, "fusedActivationFunction": act})],
        ["x"], ["y"],
    )  # fmt: skip
    xs = [int8_input(rng, (batch, h, w, c)) for _ in range(feeds)]
    x = xs[0]
    mult, shift = conv_output_multipliers("test", in_s, w_s, out_s, o)
    lo, hi = activation_range(act, out_s, out_zp, "test")
    pad = (same_padding(h, kh, stride, dil, 0 if same else 1, oh, ""), same_padding(w, kw, stride, dil, 0 if same else 1, ow, ""))

    def ruy(feed):  # aarch64: the interpreter's output stage is ruy's single rounding (tests/arm.py)
        acc = np.zeros((batch, oh, ow, o), np.int64) + bias
        xp = feed["x"].astype(np.int64) - in_zp
        for i, j, y, xx, iy, ix in taps((h, w), (oh, ow), (kh, kw), (stride, stride), (dil, dil), pad):
            acc[:, y, xx, :] += xp[:, iy, ix, :] @ weights[:, i, j, :].astype(np.int64).T
        return {"y": ruy_single_rounding(acc, mult, shift, out_zp, lo, hi)}

    got = native_matches_interpreter(model, [{"x": v} for v in xs], threads=threads, arm=ruy)[0]["y"]
    want = conv2d(x, weights, bias, mult, shift, stride=(stride, stride), dilation=(dil, dil), pad=pad,
                  out_hw=(oh, ow), in_zp=in_zp, out_zp=out_zp, act_min=lo, act_max=hi)  # fmt: skip
    np.testing.assert_array_equal(got, want)
    return True
