"""CONV_2D: native kernel == interpreter == numpy reference, over shapes, strides,
dilations, paddings, per-channel and per-tensor scales, zero points, activations."""

from __future__ import annotations

import numpy as np
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
    rng = np.random.default_rng(seed)
    eff_h, eff_w = (kh - 1) * dil + 1, (kw - 1) * dil + 1
    oh = (h + stride - 1) // stride if same else (h - eff_h + stride) // stride
    ow = (w + stride - 1) // stride if same else (w - eff_w + stride) // stride
    assume(oh >= 1 and ow >= 1)
    in_s, out_s = qscale(rng.uniform(0.01, 0.1)), qscale(rng.uniform(0.02, 0.5))
    w_s = [qscale(v) for v in rng.uniform(0.001, 0.05, o if per_channel else 1)]
    weights = rng.integers(-127, 128, (o, kh, kw, c), dtype=np.int8)
    bias = rng.integers(-20000, 20000, o).astype(np.int32)
    model = build_model(
        [
            T("x", (batch, h, w, c), "int8", [in_s], [in_zp]),
            T("w", (o, kh, kw, c), "int8", w_s, [0] * len(w_s), 0, weights),
            T("b", (o,), "int32", [in_s * s for s in w_s], [0] * len(w_s), 0, bias),
            T("y", (batch, oh, ow, o), "int8", [out_s], [out_zp]),
        ],
        [Op("CONV_2D", ["x", "w", "b"], ["y"], "Conv2DOptions", dict(
            padding=0 if same else 1, strideH=stride, strideW=stride, dilationHFactor=dil, dilationWFactor=dil,
            fusedActivationFunction=act))],
        ["x"], ["y"],
    )  # fmt: skip
    x = int8_input(rng, (batch, h, w, c))
    mult, shift = conv_output_multipliers("test", in_s, w_s, out_s, o)
    lo, hi = activation_range(act, out_s, out_zp, "test")
    pad = (same_padding(h, kh, stride, dil, 0 if same else 1, oh, ""), same_padding(w, kw, stride, dil, 0 if same else 1, ow, ""))

    def ruy(feed):  # aarch64: the interpreter's output stage is ruy's single rounding (tests/arm.py)
        acc = np.zeros((batch, oh, ow, o), np.int64) + bias
        xp = feed["x"].astype(np.int64) - in_zp
        for i, j, y, xx, iy, ix in taps((h, w), (oh, ow), (kh, kw), (stride, stride), (dil, dil), pad):
            acc[:, y, xx, :] += xp[:, iy, ix, :] @ weights[:, i, j, :].astype(np.int64).T
        return {"y": ruy_single_rounding(acc, mult, shift, out_zp, lo, hi)}

    got = native_matches_interpreter(model, [{"x": x}], arm=ruy)[0]["y"]
    want = conv2d(x, weights, bias, mult, shift, stride=(stride, stride), dilation=(dil, dil), pad=pad,
                  out_hw=(oh, ow), in_zp=in_zp, out_zp=out_zp, act_min=lo, act_max=hi)  # fmt: skip
    np.testing.assert_array_equal(got, want)
