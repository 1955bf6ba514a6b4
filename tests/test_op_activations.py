"""LOGISTIC and HARD_SWISH: native == interpreter == numpy reference on every int8 value,
each value at several positions (the interpreter's vector blocks and scalar tail)."""

from __future__ import annotations

import numpy as np
from arm import ONE_LSB
from edge_maas.kernels.ref.hard_swish import hard_swish, params
from edge_maas.kernels.ref.logistic import logistic_table
from hypothesis import example, given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, native_matches_interpreter, qscale

ALL = np.arange(-128, 128, dtype=np.int8)
X = np.concatenate([ALL, ALL[::-1], ALL[7:50]])  # 555 values: blocks and a tail


def _run(op, si, zi, so, zo, arm=None):
    model = build_model(
        [T("x", (1, X.size), "int8", [si], [zi]), T("y", (1, X.size), "int8", [so], [zo])],
        [Op(op, ["x"], ["y"])], ["x"], ["y"],
    )  # fmt: skip
    return native_matches_interpreter(model, [{"x": X[None]}], arm=arm)[0]["y"][0]


@settings(max_examples=40, deadline=None)
@given(si=st.floats(0.001, 0.2), zi=st.integers(-128, 127))
@example(si=0.012179664880856235, zi=0)  # numpy's float32 exp differs from libm's here
def test_logistic(si, zi):
    si = qscale(si)
    got = _run("LOGISTIC", si, zi, 1 / 256, -128)  # the converter's fixed output quantization
    np.testing.assert_array_equal(got, logistic_table(si, zi, 1 / 256, -128)[X.view(np.uint8)])


@settings(max_examples=40, deadline=None)
@given(si=st.floats(0.002, 0.2), so=st.floats(0.002, 0.2), zi=st.integers(-128, 127), zo=st.integers(-128, 127))
def test_hard_swish(si, so, zi, zo):
    si, so = qscale(si), qscale(so)
    got = _run("HARD_SWISH", si, zi, so, zo, arm=ONE_LSB)  # aarch64: its NEON kernel rounds some ties otherwise
    np.testing.assert_array_equal(got, hard_swish(X, zi, zo, params(si, so)))
