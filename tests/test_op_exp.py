"""EXP on int8: native (every ISA) == interpreter == numpy reference (kernels/ref/float_lut.py: expf) on every int8
value at several positions, over random quantizations, including inputs whose exp overflows float (inf: 127, the
interpreter's saturating conversion) and tiny output scales."""

from __future__ import annotations

import pytest
from float_lut_case import TINY_SCALES, check, overflow_semantics
from hypothesis import example, given, settings
from hypothesis import strategies as st


@overflow_semantics
@settings(max_examples=60, deadline=None)
@given(si=st.floats(1e-4, 0.1), zi=st.integers(-128, 127), so=st.floats(1e-3, 2.0), zo=st.integers(-128, 127))
@example(si=0.05, zi=0, so=0.1, zo=-128)
def test_exp(si, zi, so, zo):
    check("EXP", "exp", si, zi, so, zo)


@overflow_semantics
def test_exp_overflow_to_inf():
    """in scale 1: exp(127) is inf in float; inf / out_scale saturates to 127, as the interpreter's table."""
    got = check("EXP", "exp", 1.0, 0, 0.5, -128)
    assert got[127] == -127  # X[127] = -1: exp(-1) / 0.5 - 128 = -127.26 -> -127
    assert got[255] == 127  # X[255] = 127: exp(127) = inf -> 127


@overflow_semantics
@pytest.mark.parametrize("so", TINY_SCALES)
def test_exp_tiny_output_scale(so):
    check("EXP", "exp", 0.0196, -120, so, -92)
