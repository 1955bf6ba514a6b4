"""TANH on int8: native (every ISA) == interpreter == numpy reference (kernels/ref/float_lut.py) on every int8
value at several positions, over random input / output quantizations, including the converter's fixed 1/128 output
and output scales so small that 1 / scale or the rescaled value leaves int32 (the interpreter saturates, NaN -> 0)."""

from __future__ import annotations

import numpy as np
import pytest
from edge_maas.kernels.ref.float_lut import float_lut_table
from float_lut_case import TINY_SCALES, check, model, overflow_semantics
from hypothesis import example, given, settings
from hypothesis import strategies as st
from oneop import native_matches_interpreter, qscale

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError


@settings(max_examples=60, deadline=None)
@given(si=st.floats(1e-4, 2.0), zi=st.integers(-128, 127), so=st.floats(1e-4, 0.1), zo=st.integers(-128, 127))
@example(si=0.05, zi=0, so=1 / 128, zo=0)  # the converter's output quantization
@example(si=0.0235, zi=-7, so=1 / 128, zo=0)
def test_tanh(si, zi, so, zo):
    check("TANH", "tanh", si, zi, so, zo)


@overflow_semantics
@pytest.mark.parametrize("so", TINY_SCALES)
def test_tanh_tiny_output_scale(so):
    """rescaled = tanh(x) / so overflows int32 (and 1 / so itself overflows float at 1e-40): the interpreter
    saturates, so positive values give 127 (x86's plain cvttss2si would give INT32_MIN -> -128), and 0 * inf
    (x = 0) gives 0."""
    got = check("TANH", "tanh", 0.0196, -120, so, -92)
    assert got[-1] == 127
    check("TANH", "tanh", 0.05, 0, so, 0)


@settings(max_examples=10, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=5), seed=st.integers(0, 2**31))
def test_tanh_shapes(shape, seed):
    """Any rank and size: the table kernel runs the flat tensor."""
    x = np.random.default_rng(seed).integers(-128, 128, shape, dtype=np.int8)
    got = native_matches_interpreter(model("TANH", 0.03, 5, 1 / 128, 0, shape=tuple(shape)), [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, float_lut_table("tanh", qscale(0.03), 5, 1 / 128, 0)[x.view(np.uint8)])


def test_tanh_uint8_refused():
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(TANH\): tensor 'x' is uint8"):
        NativeBackend(model("TANH", 0.05, 128, 1 / 128, 128, dtype="uint8"))
