"""SLICE, SPLIT, SPLIT_V on int8 (byte copies): native (every ISA) == interpreter == numpy, over ranks,
axes (negative too), sizes with -1."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError

Q = ([0.05], [3])


def _shape(draw, rank, hi=6):
    return tuple(draw(st.lists(st.integers(1, hi), min_size=rank, max_size=rank)))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), rank=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_slice(data, rank, seed):
    shape = _shape(data.draw, rank)
    begin = [data.draw(st.integers(0, d - 1)) for d in shape]
    size = [data.draw(st.sampled_from([-1, data.draw(st.integers(1, d - b))])) for d, b in zip(shape, begin)]
    x = int8_input(np.random.default_rng(seed), shape)
    want = x[tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))]
    model = build_model(
        [T("x", shape, "int8", *Q), T("b", (rank,), "int32", data=np.array(begin, np.int32)),
         T("s", (rank,), "int32", data=np.array(size, np.int32)), T("y", want.shape, "int8", *Q)],
        [Op("SLICE", ["x", "b", "s"], ["y"], "SliceOptions", {})], ["x"], ["y"],
    )  # fmt: skip
    got = native_matches_interpreter(model, [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), rank=st.integers(1, 4), n=st.integers(1, 4), v=st.booleans(), seed=st.integers(0, 2**31))
def test_split(data, rank, n, v, seed):
    axis = data.draw(st.integers(-rank, rank - 1))
    base = list(_shape(data.draw, rank))
    if v:
        sizes = [data.draw(st.integers(1, 4)) for _ in range(n)]
        base[axis] = sum(sizes)
        given_sizes = list(sizes)
        if data.draw(st.booleans()):
            given_sizes[data.draw(st.integers(0, n - 1))] = -1
    else:
        base[axis] = base[axis] * n
        sizes = [base[axis] // n] * n
    shape = tuple(base)
    x = int8_input(np.random.default_rng(seed), shape)
    wants = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    names = [f"y{k}" for k in range(n)]
    outs = [T(nm, w.shape, "int8", *Q) for nm, w in zip(names, wants)]
    ax = T("a", (), "int32", data=np.array(axis, np.int32))
    if v:
        tensors = [T("x", shape, "int8", *Q), T("s", (n,), "int32", data=np.array(given_sizes, np.int32)), ax, *outs]
        op = Op("SPLIT_V", ["x", "s", "a"], names, "SplitVOptions", {"numSplits": n})
    else:
        tensors = [ax, T("x", shape, "int8", *Q), *outs]
        op = Op("SPLIT", ["a", "x"], names, "SplitOptions", {"numSplits": n})
    got = native_matches_interpreter(build_model(tensors, [op], ["x"], names), [{"x": x}])[0]
    for nm, w in zip(names, wants):
        np.testing.assert_array_equal(got[nm], w)


def test_split_refuses_rescaling():
    model = build_model(
        [T("a", (), "int32", data=np.array(1, np.int32)), T("x", (1, 4), "int8", *Q),
         T("y0", (1, 2), "int8", *Q), T("y1", (1, 2), "int8", [0.1], [3])],
        [Op("SPLIT", ["a", "x"], ["y0", "y1"], "SplitOptions", {"numSplits": 2})], ["x"], ["y0", "y1"],
    )  # fmt: skip
    with pytest.raises(UnsupportedOpError, match="output 'y1' and the input differ"):
        NativeBackend(model)
