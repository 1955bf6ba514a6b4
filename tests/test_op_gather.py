"""GATHER with constant positions on int8: native (every ISA) == interpreter == numpy (np.take) over random ranks,
axes (negative too), position shapes (scalar to 2-D; repeats, runs, reversed), int32 / int64 positions; positions
outside the axis and batch_dims are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError

Q = ([0.05], [3])


def _model(shape, pos, axis, batch_dims=0):
    rank = len(shape)
    a = axis % rank
    out_shape = tuple(shape[:a]) + pos.shape + tuple(shape[a + 1 :])
    return build_model(
        [T("x", shape, "int8", *Q), T("p", pos.shape, str(pos.dtype), data=pos), T("y", out_shape, "int8", *Q)],
        [Op("GATHER", ["x", "p"], ["y"], "GatherOptions", {"axis": axis, "batchDims": batch_dims})], ["x"], ["y"],
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4).map(tuple), axis_pick=st.integers(0, 10),
       negative=st.booleans(), pos_shape=st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple),
       kind=st.sampled_from(["random", "run", "reversed"]), pos_dtype=st.sampled_from(["int32", "int64"]),
       seed=st.integers(0, 2**31))  # fmt: skip
def test_gather(shape, axis_pick, negative, pos_shape, kind, pos_dtype, seed):
    rng = np.random.default_rng(seed)
    axis = axis_pick % len(shape)
    n, size = shape[axis], int(np.prod(pos_shape, dtype=np.int64))
    if kind == "random":
        pos = rng.integers(0, n, size)
    elif kind == "run":
        pos = (np.arange(size) + int(rng.integers(0, n))) % n
    else:
        pos = (n - 1 - np.arange(size)) % n
    pos = pos.astype(pos_dtype).reshape(pos_shape)
    x = int8_input(rng, shape)
    got = native_matches_interpreter(_model(shape, pos, axis - len(shape) if negative else axis), [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, np.take(x, pos, axis=axis))


def test_gather_refused():
    with pytest.raises(UnsupportedOpError, match="positions outside 0..3"):
        NativeBackend(_model((2, 4), np.array([1, 4], np.int32), 1))
    with pytest.raises(UnsupportedOpError, match="batch_dims 1 is not supported"):
        NativeBackend(_model((2, 4), np.array([[1], [0]], np.int32), 1, batch_dims=1))
