"""AVERAGE_POOL_2D and MAX_POOL_2D: native == interpreter == numpy reference
(windows clipped at SAME-padded borders, strides, fused activations)."""

from __future__ import annotations

import numpy as np
from edge_maas.kernels.ref.pooling import pool2d
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter, qscale

from edge_maas.native.quant import activation_range, same_padding


@settings(max_examples=50, deadline=None)
@given(
    kind=st.sampled_from(["AVERAGE_POOL_2D", "MAX_POOL_2D"]), h=st.integers(1, 12), w=st.integers(1, 12),
    c=st.integers(1, 20), kh=st.integers(1, 4), kw=st.integers(1, 4), stride=st.integers(1, 3),
    same=st.booleans(), act=st.sampled_from([0, 1, 3]), zp=st.integers(-128, 127), seed=st.integers(0, 2**31),
)  # fmt: skip
def test_pool(kind, h, w, c, kh, kw, stride, same, act, zp, seed):
    rng = np.random.default_rng(seed)
    oh = (h + stride - 1) // stride if same else (h - kh + stride) // stride
    ow = (w + stride - 1) // stride if same else (w - kw + stride) // stride
    assume(oh >= 1 and ow >= 1)
    s = qscale(rng.uniform(0.01, 0.2))
    model = build_model(
        [T("x", (1, h, w, c), "int8", [s], [zp]), T("y", (1, oh, ow, c), "int8", [s], [zp])],
        [Op(kind, ["x"], ["y"], "Pool2DOptions", dict(padding=0 if same else 1, strideH=stride, strideW=stride,
            filterHeight=kh, filterWidth=kw, fusedActivationFunction=act))],
        ["x"], ["y"],
    )  # fmt: skip
    x = int8_input(rng, (1, h, w, c))
    got = native_matches_interpreter(model, [{"x": x}])[0]["y"]
    mode = 0 if same else 1
    pad = (same_padding(h, kh, stride, 1, mode, oh, ""), same_padding(w, kw, stride, 1, mode, ow, ""))
    lo, hi = activation_range(act, s, zp, "test")
    want = pool2d(x, "max" if kind == "MAX_POOL_2D" else "avg", k=(kh, kw), stride=(stride, stride), pad=pad,
                  out_hw=(oh, ow), act_min=lo, act_max=hi)  # fmt: skip
    np.testing.assert_array_equal(got, want)
