"""DEPTHWISE_CONV_2D: native == interpreter == numpy reference (depth multipliers, dilations,
strides, paddings, per-channel scales; channel counts around the 8-lane split), on every ISA in oneop.ISAS."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import litert_semantics
from edge_maas.kernels.ref.depthwise_conv import depthwise_conv2d
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


def _check(h, w, c, dm, k, stride, dil, same, act, in_zp, out_zp, seed, batch=1) -> bool:
    """Build the one-op model, compare native (every ISA) with the interpreter and the reference; False when the
    window leaves no output (nothing checked)."""
    rng = np.random.default_rng(seed)
    o, eff = c * dm, (k - 1) * dil + 1
    oh = (h + stride - 1) // stride if same else (h - eff + stride) // stride
    ow = (w + stride - 1) // stride if same else (w - eff + stride) // stride
    if oh < 1 or ow < 1:
        return False
    in_s, out_s = qscale(rng.uniform(0.01, 0.1)), qscale(rng.uniform(0.02, 0.5))
    w_s = [qscale(v) for v in rng.uniform(0.001, 0.05, o)]
    weights = rng.integers(-127, 128, (1, k, k, o), dtype=np.int8)
    bias = rng.integers(-20000, 20000, o).astype(np.int32)
    model = build_model(
        [
            T("x", (batch, h, w, c), "int8", [in_s], [in_zp]),
            T("w", (1, k, k, o), "int8", w_s, [0] * o, 3, weights),
            T("b", (o,), "int32", [in_s * s for s in w_s], [0] * o, 0, bias),
            T("y", (batch, oh, ow, o), "int8", [out_s], [out_zp]),
        ],
        [Op("DEPTHWISE_CONV_2D", ["x", "w", "b"], ["y"], "DepthwiseConv2DOptions", dict(
            padding=0 if same else 1, strideH=stride, strideW=stride, depthMultiplier=dm,
            dilationHFactor=dil, dilationWFactor=dil, fusedActivationFunction=act))],
        ["x"], ["y"],
    )  # fmt: skip
    x = int8_input(rng, (batch, h, w, c))
    got = native_matches_interpreter(model, [{"x": x}])[0]["y"]
    mult, shift = conv_output_multipliers("test", in_s, w_s, out_s, o)
    lo, hi = activation_range(act, out_s, out_zp, "test")
    mode = 0 if same else 1
    pad = (same_padding(h, k, stride, dil, mode, oh, ""), same_padding(w, k, stride, dil, mode, ow, ""))
    want = depthwise_conv2d(x, weights, bias, mult, shift, depth_mult=dm, stride=(stride, stride),
                            dilation=(dil, dil), pad=pad, out_hw=(oh, ow), in_zp=in_zp, out_zp=out_zp,
                            act_min=lo, act_max=hi, round_up_below=o - o % 8)  # fmt: skip
    np.testing.assert_array_equal(got, want)
    return True
