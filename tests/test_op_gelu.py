"""GELU on int8, exact (0.5 x erfc(-x / sqrt 2)) and approximate (the tanh form): native (every ISA) ==
interpreter == numpy reference (kernels/ref/float_lut.py) on every int8 value at several positions, over random
input / output quantizations, including output scales so small that the rescaled value leaves int32."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.float_lut import float_lut_table
from hypothesis import example, given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, native_matches_interpreter, qscale

ALL = np.arange(-128, 128, dtype=np.int8)
X = np.concatenate([ALL, ALL[::-1], ALL[7:50]])  # 555 values: the table at many positions


def _model(si, zi, so, zo, approximate, options=True, shape=(1, X.size)):
    opts = ("GeluOptions", {"approximate": approximate}) if options else ()
    return build_model([T("x", shape, "int8", [si], [zi]), T("y", shape, "int8", [so], [zo])],
                       [Op("GELU", ["x"], ["y"], *opts)], ["x"], ["y"])  # fmt: skip


def check(si, zi, so, zo, approximate, options=True):
    si, so = qscale(si), qscale(so)
    got = native_matches_interpreter(_model(si, zi, so, zo, approximate, options), [{"x": X[None]}])[0]["y"][0]
    kind = "gelu_approximate" if approximate else "gelu"
    want = float_lut_table(kind, si, zi, so, zo)
    np.testing.assert_array_equal(got, want[X.view(np.uint8)])
    np.testing.assert_array_equal(ex.float_lut_table(kind, si, zi, so, zo), want)  # C table == numpy table


@settings(max_examples=60, deadline=None)
@given(si=st.floats(1e-4, 1.0), zi=st.integers(-128, 127), so=st.floats(1e-4, 0.5), zo=st.integers(-128, 127),
       approximate=st.booleans())  # fmt: skip
@example(si=0.05, zi=10, so=0.03, zo=-100, approximate=False)  # a converter-like GELU: output zero point near -128
@example(si=0.05, zi=10, so=0.03, zo=-100, approximate=True)
def test_gelu(si, zi, so, zo, approximate):
    check(si, zi, so, zo, approximate)


def test_gelu_without_options_is_exact():
    """No GeluOptions: the interpreter's default (approximate = false)."""
    check(0.04, 3, 0.02, -90, approximate=False, options=False)


@pytest.mark.parametrize("approximate", [False, True])
@pytest.mark.parametrize("so", [1e-12, 1e-40])
def test_gelu_tiny_output_scale(so, approximate):
    """Saturating conversion, NaN (0 * inf) -> 0, as for TANH (kernels/c/lut_float.c)."""
    check(0.0196, -120, so, -92, approximate)
    check(0.05, 0, so, 0, approximate)


def test_tables_are_the_x86_bytes():
    """TANH and GELU tables over a grid of 1,200 quantizations x 3 transforms hash to the x86-64 digest: on any
    CPU (aarch64 CI) the C library's tanhf / erfcf must give the x86 tables.  glibc 2.36 on aarch64 (qemu, a C
    harness over the same grid) gives them."""
    h = hashlib.sha256()
    for kind in ("tanh", "gelu", "gelu_approximate"):
        for i in range(60):
            for j in range(20):
                si, so = float(np.float32(1e-4 * (1 + i * i * 7))), float(np.float32(1e-4 * (1 + j * j * 13)))
                h.update(ex.float_lut_table(kind, si, (i * 37) % 256 - 128, so, (j * 53) % 256 - 128).tobytes())
    assert h.hexdigest() == "7a5efbdc30924d70a6415e8829ba26031d8974db9236d4b2509b5afefa2d8f68"
