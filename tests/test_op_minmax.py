"""MAXIMUM and MINIMUM on int8 with broadcasting (constants too): native (every ISA) == interpreter ==
numpy."""

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
@given(data=st.data(), rank=st.integers(1, 5), op=st.sampled_from(["MAXIMUM", "MINIMUM"]), const=st.booleans(),
       seed=st.integers(0, 2**31))  # fmt: skip
def test_minmax(data, rank, op, const, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(data.draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))
    other = tuple(d if data.draw(st.booleans()) else 1 for d in shape)[data.draw(st.integers(0, rank - 1)) :]
    x, w = int8_input(rng, shape), int8_input(rng, other)
    want = (np.maximum if op == "MAXIMUM" else np.minimum)(x, w)
    tensors = [T("x", shape, "int8", *Q), T("w", other, "int8", *Q, data=w if const else None),
               T("y", want.shape, "int8", *Q)]  # fmt: skip
    model = build_model(tensors, [Op(op, ["x", "w"], ["y"])], ["x"] if const else ["x", "w"], ["y"])
    feed = {"x": x} if const else {"x": x, "w": w}
    got = native_matches_interpreter(model, [feed])[0]["y"]
    np.testing.assert_array_equal(got, want)


def test_minmax_refuses_mixed_quantization():
    model = build_model([T("x", (4,), "int8", *Q), T("w", (4,), "int8", [0.1], [0]), T("y", (4,), "int8", *Q)],
                        [Op("MAXIMUM", ["x", "w"], ["y"])], ["x", "w"], ["y"])  # fmt: skip
    with pytest.raises(UnsupportedOpError, match="differ in quantization"):
        NativeBackend(model)
