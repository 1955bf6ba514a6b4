"""REDUCE_MAX and REDUCE_MIN on int8: native (every ISA) == interpreter == numpy over random ranks and axis sets
(any order, negative, repeated), keep_dims or not; a differing output quantization is refused as the interpreter
does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError

Q = ([0.05], [-3])


def _model(op, shape, axes, keep, out_q=Q):
    rank = len(shape)
    red = {a % rank for a in axes}
    out_shape = tuple(1 if i in red else d for i, d in enumerate(shape)) if keep else tuple(
        d for i, d in enumerate(shape) if i not in red)  # fmt: skip
    return build_model(
        [T("x", shape, "int8", *Q), T("a", (len(axes),), "int32", data=np.array(axes, np.int32)),
         T("y", out_shape, "int8", *out_q)],
        [Op(op, ["x", "a"], ["y"], "ReducerOptions", {"keepDims": keep})], ["x"], ["y"],
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(["REDUCE_MAX", "REDUCE_MIN"]), shape=st.lists(st.integers(1, 6), min_size=1, max_size=5),
       picks=st.lists(st.integers(-5, 4), min_size=1, max_size=4), keep=st.booleans(), seed=st.integers(0, 2**31))  # fmt: skip
def test_reduce_max_min(op, shape, picks, keep, seed):
    rank = len(shape)
    axes = [p % rank - (rank if p < 0 else 0) for p in picks]  # in range, negatives kept negative, repeats allowed
    x = int8_input(np.random.default_rng(seed), tuple(shape))
    got = native_matches_interpreter(_model(op, tuple(shape), axes, keep), [{"x": x}])[0]["y"]
    fn = np.max if op == "REDUCE_MAX" else np.min
    np.testing.assert_array_equal(got, fn(x, axis=tuple(sorted({a % rank for a in axes})), keepdims=keep))


def test_reduce_max_over_hw():
    """The global max pooling of a 4-D feature map (axes 1, 2, keep_dims): the common use."""
    x = int8_input(np.random.default_rng(3), (2, 9, 7, 19))
    got = native_matches_interpreter(_model("REDUCE_MAX", x.shape, [1, 2], True), [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, x.max(axis=(1, 2), keepdims=True))


def test_reduce_max_requantizing_refused():
    with pytest.raises(UnsupportedOpError, match="differ in quantization"):
        NativeBackend(_model("REDUCE_MAX", (2, 3), [1], False, out_q=([0.1], [-3])))
