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


# The vector paths (AVX2 32 bytes, AVX-512 64, NEON 16 per register): a kept inner axis folds the reduced rows
# block by block (4 registers, then 1, then the tail: masked on AVX-512, scalar elsewhere); a reduced inner axis
# folds a row into one register, then across it.  Shapes give each block size and tail; values: mostly in one
# half, a few from the whole range at random places, so the extreme of each output sits at a different position.
@pytest.mark.parametrize(("shape", "axes"), [((1, 16, 16, 128), [1, 2]), ((2, 9, 300), [1]), ((3, 5, 1000), [2]),
                                             ((2, 7, 70), [0, 2]), ((4, 3, 257), [-1]), ((1, 6, 6, 191), [1, 2]),
                                             ((1, 40, 33), [1])])  # fmt: skip
@pytest.mark.parametrize("op", ["REDUCE_MAX", "REDUCE_MIN"])
def test_reduce_vector_paths(op, shape, axes):
    rng = np.random.default_rng(sum(shape) + len(axes))
    half = (-128, 0) if op == "REDUCE_MAX" else (0, 128)
    x = rng.integers(*half, shape).astype(np.int8)
    few = rng.random(shape) < 0.02
    x[few] = rng.integers(-128, 128, int(few.sum()))
    got = native_matches_interpreter(_model(op, shape, axes, True), [{"x": x}])[0]["y"]
    fn = np.max if op == "REDUCE_MAX" else np.min
    np.testing.assert_array_equal(got, fn(x, axis=tuple(a % len(shape) for a in axes), keepdims=True))
