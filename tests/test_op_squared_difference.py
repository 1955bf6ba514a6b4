"""SQUARED_DIFFERENCE on int8: native (every ISA) == interpreter == numpy (kernels/ref/squared_difference.py) over
random broadcast shapes, a constant operand, and quantizations; an output multiplier >= 1 (where the interpreter
aborts at prepare) is refused."""

from __future__ import annotations

import numpy as np
import pytest
from edge_maas.kernels.ref.squared_difference import squared_difference
from hypothesis import example, given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter, qscale

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError
from edge_maas.native.ops.squared_difference import params

SHAPES = [((2, 5, 7), (2, 5, 7)), ((2, 5, 7), (7,)), ((2, 5, 7), (5, 1)), ((1, 4, 4, 8), (1, 1, 1, 8)), ((3,), (1,))]


def _model(sa, sb, q, b_const=None):
    (s1, z1), (s2, z2), (so, zo) = q
    out = np.broadcast_shapes(sa, sb)
    return build_model(
        [T("a", sa, "int8", [s1], [z1]), T("b", sb, "int8", [s2], [z2], data=b_const), T("y", out, "int8", [so], [zo])],
        [Op("SQUARED_DIFFERENCE", ["a", "b"], ["y"])], ["a"] if b_const is not None else ["a", "b"], ["y"],
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(shapes=st.sampled_from(SHAPES), s1=st.floats(0.005, 0.2), s2=st.floats(0.005, 0.2), so=st.floats(0.05, 2.0),
       z1=st.integers(-128, 127), z2=st.integers(-128, 127), zo=st.integers(-128, 127), b_const=st.booleans(),
       seed=st.integers(0, 2**31))  # fmt: skip
@example(shapes=SHAPES[1], s1=0.05, s2=0.05, so=0.2, z1=0, z2=0, zo=-128, b_const=True, seed=0)
def test_squared_difference(shapes, s1, s2, so, z1, z2, zo, b_const, seed):
    rng = np.random.default_rng(seed)
    q = [(qscale(s1), z1), (qscale(s2), z2), (qscale(so), zo)]
    sa, sb = shapes
    a, b = int8_input(rng, sa), int8_input(rng, sb)
    model = _model(sa, sb, q, b if b_const else None)
    got = native_matches_interpreter(model, [{"a": a} if b_const else {"a": a, "b": b}])[0]["y"]
    p = params(q[0][0], q[1][0], q[2][0], "test")
    np.testing.assert_array_equal(got, squared_difference(a, b, z1, z2, zo, p))


def test_squared_difference_output_multiplier_at_least_one_refused():
    with pytest.raises(UnsupportedOpError, match="output multiplier .* is not in \\(0, 1\\)"):
        NativeBackend(_model((4,), (4,), [(0.5, 0), (0.5, 0), (1e-6, 0)]))
