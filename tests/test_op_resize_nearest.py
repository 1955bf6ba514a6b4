"""RESIZE_NEAREST_NEIGHBOR on int8 by whole factors: native (every ISA) == interpreter == numpy
(kernels/ref/resize_nearest.py), with and without half-pixel centers; other mappings: test_op_resize_nearest_any.py."""

from __future__ import annotations

import numpy as np
from edge_maas.kernels.ref.resize_nearest import resize_nearest
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import int8_input, native_matches_interpreter, resize_nearest_model


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 17), ky=st.integers(1, 4),
       kx=st.integers(1, 4), half=st.booleans(), seed=st.integers(0, 2**31))  # fmt: skip
def test_resize_nearest_whole_factors(b, h, w, c, ky, kx, half, seed):
    shape, out_hw = (b, h, w, c), (h * ky, w * kx)
    x = int8_input(np.random.default_rng(seed), shape)
    got = native_matches_interpreter(resize_nearest_model(shape, out_hw, half=half), [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, resize_nearest(x, out_hw, half_pixel_centers=half))
    np.testing.assert_array_equal(got, x.repeat(ky, axis=1).repeat(kx, axis=2))


def test_resize_nearest_align_corners_that_repeats():
    """align_corners 4 -> 8 maps to 0,0,1,1,2,2,3,3 (= i // 2): taken, and equal to the interpreter."""
    x = int8_input(np.random.default_rng(0), (1, 4, 4, 5))
    got = native_matches_interpreter(resize_nearest_model((1, 4, 4, 5), (8, 8), align=True), [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, resize_nearest(x, (8, 8), align_corners=True))
