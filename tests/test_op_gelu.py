"""GELU on int8, exact (0.5 x erfc(-x / sqrt 2)) and approximate (the tanh form): native (every ISA) ==
interpreter == numpy reference (kernels/ref/float_lut.py) on every int8 value at several positions, over random
input / output quantizations, including output scales so small that the rescaled value leaves int32."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from edge_maas.kernels import executor as ex
from float_lut_case import check, overflow_semantics
from hypothesis import example, given, settings
from hypothesis import strategies as st


def _check(si, zi, so, zo, approximate, options=True):
    opts = ("GeluOptions", {"approximate": approximate}) if options else None
    check("GELU", "gelu_approximate" if approximate else "gelu", si, zi, so, zo, opts)


@settings(max_examples=60, deadline=None)
@given(si=st.floats(1e-4, 1.0), zi=st.integers(-128, 127), so=st.floats(1e-4, 0.5), zo=st.integers(-128, 127),
       approximate=st.booleans())  # fmt: skip
@example(si=0.05, zi=10, so=0.03, zo=-100, approximate=False)  # a converter-like GELU: output zero point near -128
@example(si=0.05, zi=10, so=0.03, zo=-100, approximate=True)
def test_gelu(si, zi, so, zo, approximate):
    _check(si, zi, so, zo, approximate)


def test_gelu_without_options_is_exact():
    """No GeluOptions: the interpreter's default (approximate = false)."""
    _check(0.04, 3, 0.02, -90, approximate=False, options=False)


@overflow_semantics
@pytest.mark.parametrize("approximate", [False, True])
@pytest.mark.parametrize("so", [1e-12, 1e-40])
def test_gelu_tiny_output_scale(so, approximate):
    """Saturating conversion, NaN (0 * inf) -> 0, as for TANH (kernels/c/lut_float.c)."""
    _check(0.0196, -120, so, -92, approximate)
    _check(0.05, 0, so, 0, approximate)


def test_tables_are_the_x86_bytes():
    """The float tables (TANH, GELU exact and approximate, ELU, EXP) over a grid of 1,200 quantizations each hash to
    the x86-64 digest: on any CPU (aarch64 CI) the C library's tanhf / erfcf / expm1f / expf must give the x86
    tables.  A C harness of lut_float.c over the same grid, cross-built and run under qemu-aarch64 with glibc 2.36,
    writes the same 1.5 MB as on x86."""
    h = hashlib.sha256()
    for kind in ("tanh", "gelu", "gelu_approximate", "elu", "exp"):
        for i in range(60):
            for j in range(20):
                si, so = float(np.float32(1e-4 * (1 + i * i * 7))), float(np.float32(1e-4 * (1 + j * j * 13)))
                h.update(ex.float_lut_table(kind, si, (i * 37) % 256 - 128, so, (j * 53) % 256 - 128).tobytes())
    assert h.hexdigest() == "fdd5c8081ba5595a1517355a5319c7c924e59192c383574f6e6156e6a0abcb22"
