"""RESIZE_NEAREST_NEIGHBOR with any index map (non-whole factors, downscaling, align_corners, half_pixel_centers):
native (every ISA) == interpreter == numpy (kernels/ref/resize_nearest.py); whole factors still take the strided
copy (tests/test_op_resize_nearest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from edge_maas.kernels.ref.resize_nearest import resize_nearest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from oneop import int8_input, native_matches_interpreter, resize_nearest_model

from edge_maas.native.program import compile_graph
from edge_maas.tflite import load_graph

MODES = [(False, False), (True, False), (False, True), (True, True)]


@settings(max_examples=60, deadline=None)
@given(b=st.integers(1, 2), h=st.integers(1, 10), w=st.integers(1, 10), c=st.integers(1, 9), oh=st.integers(1, 25),
       ow=st.integers(1, 25), mode=st.sampled_from(MODES), seed=st.integers(0, 2**31))  # fmt: skip
@example(b=1, h=4, w=4, c=3, oh=6, ow=6, mode=(False, False), seed=0)  # 1.5x
@example(b=1, h=3, w=3, c=2, oh=9, ow=9, mode=(True, False), seed=1)  # align_corners 3 -> 9: 0,0,1,1,1,1,2,2,2
@example(b=1, h=9, w=7, c=4, oh=4, ow=3, mode=(False, True), seed=2)  # downscaling
def test_resize_nearest_any_mapping(b, h, w, c, oh, ow, mode, seed):
    x = int8_input(np.random.default_rng(seed), (b, h, w, c))
    got = native_matches_interpreter(resize_nearest_model(x.shape, (oh, ow), *mode), [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, resize_nearest(x, (oh, ow), *mode))


@pytest.mark.parametrize("out_hw, align, kernel", [((8, 8), False, "StridedCopy"), ((6, 6), False, "ResizeNearest"),
                                                   ((8, 8), True, "StridedCopy"), ((9, 9), True, "ResizeNearest")])  # fmt: skip
def test_whole_factors_keep_the_strided_copy(out_hw, align, kernel):
    """4 -> 8 (also with align_corners, whose map is i // 2 there) stays a strided copy; 4 -> 6 and 4 -> 9 with
    align_corners take the index-map kernel."""
    prog = compile_graph(load_graph(resize_nearest_model((1, 4, 4, 3), out_hw, align))).program
    assert {k.name for k in prog.kernels} == {kernel}
