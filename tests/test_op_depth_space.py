"""DEPTH_TO_SPACE and SPACE_TO_DEPTH (int8, NHWC): native (every ISA) == interpreter == numpy."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter

Q = ([0.05], [3])


def d2s(x, bs):
    n, h, w, cin = x.shape
    c = cin // (bs * bs)
    return x.reshape(n, h, w, bs, bs, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * bs, w * bs, c)


def s2d(x, bs):
    n, h, w, c = x.shape
    return x.reshape(n, h // bs, bs, w // bs, bs, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // bs, w // bs, -1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 5), bs=st.integers(1, 4),
       to_space=st.booleans(), seed=st.integers(0, 2**31))  # fmt: skip
def test_depth_space(n, h, w, c, bs, to_space, seed):
    rng = np.random.default_rng(seed)
    if to_space:
        x = int8_input(rng, (n, h, w, c * bs * bs))
        want, op, opts = d2s(x, bs), "DEPTH_TO_SPACE", "DepthToSpaceOptions"
    else:
        x = int8_input(rng, (n, h * bs, w * bs, c))
        want, op, opts = s2d(x, bs), "SPACE_TO_DEPTH", "SpaceToDepthOptions"
    model = build_model([T("x", x.shape, "int8", *Q), T("y", want.shape, "int8", *Q)],
                        [Op(op, ["x"], ["y"], opts, {"blockSize": bs})], ["x"], ["y"])  # fmt: skip
    got = native_matches_interpreter(model, [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, want)
