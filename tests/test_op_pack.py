"""PACK and UNPACK on int8: native (every ISA) == interpreter == numpy (np.stack / slicing) over random ranks, axes
(negative too), input counts and constant inputs; differing quantization is refused, as the interpreter does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError

Q = ([0.05], [3])


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=0, max_size=4).map(tuple), n=st.integers(1, 5),
       axis_pick=st.integers(0, 10), negative=st.booleans(), const_first=st.booleans(), seed=st.integers(0, 2**31))  # fmt: skip
def test_pack(shape, n, axis_pick, negative, const_first, seed):
    rng = np.random.default_rng(seed)
    rank = len(shape) + 1
    axis = axis_pick % rank
    xs = [int8_input(rng, shape) for _ in range(n)]
    out_shape = np.stack(xs, axis).shape
    names = [f"x{k}" for k in range(n)]
    tensors = [T(nm, shape, "int8", *Q, data=xs[0] if (k == 0 and const_first) else None) for k, nm in enumerate(names)]
    model = build_model(
        [*tensors, T("y", out_shape, "int8", *Q)],
        [Op("PACK", names, ["y"], "PackOptions", {"valuesCount": n, "axis": axis - rank if negative else axis})],
        [nm for k, nm in enumerate(names) if not (k == 0 and const_first)], ["y"],
    )  # fmt: skip
    feed = {nm: x for k, (nm, x) in enumerate(zip(names, xs)) if not (k == 0 and const_first)}
    got = native_matches_interpreter(model, [feed])[0]["y"]
    np.testing.assert_array_equal(got, np.stack(xs, axis))


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=5).map(tuple), axis_pick=st.integers(0, 10),
       negative=st.booleans(), seed=st.integers(0, 2**31))  # fmt: skip
def test_unpack(shape, axis_pick, negative, seed):
    axis = axis_pick % len(shape)
    x = int8_input(np.random.default_rng(seed), shape)
    n = shape[axis]
    part = shape[:axis] + shape[axis + 1 :]
    names = [f"y{k}" for k in range(n)]
    model = build_model(
        [T("x", shape, "int8", *Q), *[T(nm, part, "int8", *Q) for nm in names]],
        [Op("UNPACK", ["x"], names, "UnpackOptions", {"num": n, "axis": axis - len(shape) if negative else axis})],
        ["x"], names,
    )  # fmt: skip
    got = native_matches_interpreter(model, [{"x": x}])[0]
    for k, nm in enumerate(names):
        np.testing.assert_array_equal(got[nm], np.take(x, k, axis=axis))


def test_pack_requantizing_refused():
    model = build_model(
        [T("a", (2, 3), "int8", *Q), T("b", (2, 3), "int8", [0.1], [3]), T("y", (2, 2, 3), "int8", *Q)],
        [Op("PACK", ["a", "b"], ["y"], "PackOptions", {"valuesCount": 2, "axis": 0})], ["a", "b"], ["y"],
    )  # fmt: skip
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(PACK\): input 'b' and output differ"):
        NativeBackend(model)
