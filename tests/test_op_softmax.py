"""SOFTMAX: native == interpreter == numpy reference (row lengths, betas, scales, zero points)."""

from __future__ import annotations

import numpy as np
from arm import ONE_LSB
from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.softmax import softmax
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter, qscale


@settings(max_examples=50, deadline=None)
@given(outer=st.integers(1, 5), depth=st.integers(1, 70), beta=st.sampled_from([1.0, 0.5, 2.0]),
       si=st.floats(0.005, 0.3), zi=st.integers(-128, 127), seed=st.integers(0, 2**31))  # fmt: skip
def test_softmax(outer, depth, beta, si, zi, seed):
    si = qscale(si)
    so, zo = 1 / 256, -128  # the converter's fixed int8 softmax output quantization
    model = build_model(
        [T("x", (outer, depth), "int8", [si], [zi]), T("y", (outer, depth), "int8", [so], [zo])],
        [Op("SOFTMAX", ["x"], ["y"], "SoftmaxOptions", dict(beta=beta))], ["x"], ["y"],
    )  # fmt: skip
    x = int8_input(np.random.default_rng(seed), (outer, depth))
    got = native_matches_interpreter(model, [{"x": x}], arm=ONE_LSB)[0]["y"]  # aarch64: tests/arm.py
    np.testing.assert_array_equal(got, softmax(x, ex.softmax_table(si, beta), so, zo))
