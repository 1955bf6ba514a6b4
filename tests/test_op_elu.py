"""ELU on int8: native (every ISA) == interpreter == numpy reference (kernels/ref/float_lut.py: expm1f below 0,
identity above) on every int8 value at several positions, over random quantizations and tiny output scales."""

from __future__ import annotations

import pytest
from float_lut_case import TINY_SCALES, check, overflow_semantics
from hypothesis import example, given, settings
from hypothesis import strategies as st


@settings(max_examples=60, deadline=None)
@given(si=st.floats(1e-4, 1.0), zi=st.integers(-128, 127), so=st.floats(1e-4, 1.0), zo=st.integers(-128, 127))
@example(si=0.05, zi=20, so=0.05, zo=20)  # a converter's ELU: the input's quantization, outputs >= -1
def test_elu(si, zi, so, zo):
    check("ELU", "elu", si, zi, so, zo)


@overflow_semantics
@pytest.mark.parametrize("so", TINY_SCALES)
def test_elu_tiny_output_scale(so):
    check("ELU", "elu", 0.0196, -120, so, -92)
