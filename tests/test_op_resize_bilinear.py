"""RESIZE_BILINEAR on int8: native (every ISA) == interpreter == numpy (kernels/ref/resize_bilinear.py) over random
shapes and output sizes (up, down, mixed, 1-pixel), plain, align_corners and half_pixel_centers, with the cases the
interpreter treats specially: negative fractions at the first rows with half-pixel centers, rounding ties of
either sign (half away from zero), and the models it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from edge_maas.kernels.ref.resize_bilinear import axis_map, resize_bilinear
from hypothesis import example, given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError

MODES = [(False, False), (True, False), (False, True)]  # (align_corners, half_pixel_centers)


def _model(shape, out_hw, align=False, half=False, out_q=([0.05], [3]), size_const=True):
    b, _, _, c = shape
    size = T("s", (2,), "int32", data=np.array(out_hw, np.int32) if size_const else None)
    return build_model(
        [T("x", shape, "int8", [0.05], [3]), size, T("y", (b, *out_hw, c), "int8", *out_q)],
        [Op("RESIZE_BILINEAR", ["x", "s"], ["y"], "ResizeBilinearOptions",
            {"alignCorners": align, "halfPixelCenters": half})], ["x", "s"] if not size_const else ["x"], ["y"],
    )  # fmt: skip


def check(shape, out_hw, align, half, seed=0, x=None):
    x = int8_input(np.random.default_rng(seed), shape) if x is None else x
    got = native_matches_interpreter(_model(shape, out_hw, align, half), [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, resize_bilinear(x, out_hw, align, half))
    return got


@settings(max_examples=80, deadline=None)
@given(b=st.integers(1, 2), h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 20),
       oh=st.integers(1, 30), ow=st.integers(1, 30), mode=st.sampled_from(MODES), seed=st.integers(0, 2**31))  # fmt: skip
@example(b=1, h=5, w=5, c=8, oh=10, ow=10, mode=(False, False), seed=1)  # 2x: the FPN upsampling
@example(b=1, h=5, w=5, c=8, oh=10, ow=10, mode=(False, True), seed=1)
@example(b=1, h=3, w=4, c=3, oh=9, ow=7, mode=(True, False), seed=2)
@example(b=1, h=9, w=7, c=5, oh=2, ow=3, mode=(False, True), seed=3)  # downscaling
@example(b=1, h=1, w=1, c=4, oh=5, ow=3, mode=(True, False), seed=4)  # 1 pixel in, align_corners
@example(b=1, h=6, w=6, c=4, oh=1, ow=1, mode=(True, False), seed=5)  # 1 pixel out, align_corners
def test_resize_bilinear(b, h, w, c, oh, ow, mode, seed):
    check((b, h, w, c), (oh, ow), *mode, seed=seed)


@pytest.mark.parametrize("mode", MODES)
def test_resize_bilinear_ties_round_away_from_zero(mode):
    """Alternating odd values upsampled 2x: midpoints land on exact halves of both signs.  The interpreter rounds
    -1.5 to -2 and 1.5 to 2 (half away from zero; with TFLITE_SINGLE_ROUNDING it would give -1)."""
    x = np.tile(np.array([-1, -2, 1, 2, -127, -128, 127, 126], np.int8), 4).reshape(1, 4, 8, 1)
    got = check(x.shape, (8, 16), *mode, x=x)
    if mode == (False, False):
        assert got[0, 0, 1, 0] == -2 and got[0, 0, 5, 0] == 2  # (-1 + -2) / 2 = -1.5 -> -2; (1 + 2) / 2 -> 2


def test_half_pixel_first_rows_have_negative_fractions():
    """Half-pixel upsampling starts at source coordinate -0.25 (x4): the interpreter keeps the negative fraction
    with both taps on row 0, so the first rows equal row 0 exactly."""
    y0, y1, d = axis_map(3, 12, False, True)
    assert d[0] < 0 and y0[0] == y1[0] == 0
    got = check((1, 3, 3, 6), (12, 12), False, True, seed=7)
    assert (got[0, 0] == got[0, 1]).all()


def test_resize_bilinear_ignores_the_quantization():
    """The interpreter interpolates stored values whatever the output quantization: so does native."""
    x = int8_input(np.random.default_rng(9), (1, 4, 4, 3))
    model = _model(x.shape, (7, 7), out_q=([0.3], [-20]))
    got = native_matches_interpreter(model, [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, resize_bilinear(x, (7, 7)))


def test_resize_bilinear_refused():
    with pytest.raises(UnsupportedOpError, match="align_corners and half_pixel_centers are both set"):
        NativeBackend(_model((1, 4, 4, 2), (8, 8), align=True, half=True))
    with pytest.raises(UnsupportedOpError, match="a computed one is not supported"):
        NativeBackend(_model((1, 4, 4, 2), (8, 8), size_const=False))
