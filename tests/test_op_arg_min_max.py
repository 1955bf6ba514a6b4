"""ARG_MAX and ARG_MIN on int8 / uint8: native (every ISA) == interpreter == numpy (argmax / argmin: the first index
on ties) over random ranks, axes (negative too, last axis and inner ones), int32 / int64 outputs, int32 / int64 axis
tensors, and inputs with many ties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, native_matches_interpreter

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError

TYPES = {"int32": 2, "int64": 4}  # schema TensorType codes of the output type option


def _model(op, shape, axis, out_dtype="int32", axis_dtype="int32", in_dtype="int8", axis_const=True):
    out_shape = tuple(d for i, d in enumerate(shape) if i != axis % len(shape))
    opts = "ArgMaxOptions" if op == "ARG_MAX" else "ArgMinOptions"
    return build_model(
        [T("x", shape, in_dtype, [0.05], [0 if in_dtype == "int8" else 128]),
         T("a", (1,), axis_dtype, data=np.array([axis]) if axis_const else None), T("y", out_shape, out_dtype)],
        [Op(op, ["x", "a"], ["y"], opts, {"outputType": TYPES[out_dtype]})], ["x"] if axis_const else ["x", "a"],
        ["y"],
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(["ARG_MAX", "ARG_MIN"]), shape=st.lists(st.integers(1, 7), min_size=1, max_size=4),
       axis_pick=st.integers(0, 10), negative=st.booleans(), out_dtype=st.sampled_from(["int32", "int64"]),
       axis_dtype=st.sampled_from(["int32", "int64"]), in_dtype=st.sampled_from(["int8", "uint8"]),
       narrow=st.booleans(), seed=st.integers(0, 2**31))  # fmt: skip
def test_arg_min_max(op, shape, axis_pick, negative, out_dtype, axis_dtype, in_dtype, narrow, seed):
    rng = np.random.default_rng(seed)
    axis = axis_pick % len(shape)
    lo, hi = (-2, 2) if narrow else (-128, 128)  # narrow: many ties
    x = rng.integers(lo, hi, shape).astype(np.int8)
    x = x.view(np.uint8) if in_dtype == "uint8" else x
    model = _model(op, tuple(shape), axis - len(shape) if negative else axis, out_dtype, axis_dtype, in_dtype)
    got = native_matches_interpreter(model, [{"x": x}])[0]["y"]
    want = (np.argmax if op == "ARG_MAX" else np.argmin)(x, axis=axis)
    assert got.dtype == np.dtype(out_dtype)
    np.testing.assert_array_equal(got, want)


def test_arg_max_ties_take_the_first_index():
    x = np.array([[3, 7, 7, -1, 7], [-128, -128, -128, -128, -128]], np.int8)
    got = native_matches_interpreter(_model("ARG_MAX", x.shape, 1), [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, [1, 0])


def test_arg_max_computed_axis_refused():
    with pytest.raises(UnsupportedOpError, match="a computed one is not supported"):
        NativeBackend(_model("ARG_MAX", (2, 3), 1, axis_const=False))
