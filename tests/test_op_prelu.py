"""PRELU on int8: native (every ISA) == interpreter == numpy (kernels/ref/prelu.py) over random shapes, alpha
layouts (per channel, shared along H and W, full, a single value, an activation instead of a constant) and
quantizations (input scale above the output's: a left shift; negative alphas; any zero points)."""

from __future__ import annotations

import numpy as np
import pytest
from edge_maas.kernels.ref.prelu import prelu
from hypothesis import example, given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter, qscale

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import UnsupportedOpError
from edge_maas.native.ops.prelu import multipliers


def _model(shape, alpha, q, alpha_const=True, out_shape=None):
    (si, zi), (sa, za), (so, zo) = q
    a = T("a", alpha.shape, "int8", [sa], [za], data=alpha if alpha_const else None)
    return build_model(
        [T("x", shape, "int8", [si], [zi]), a, T("y", out_shape or shape, "int8", [so], [zo])],
        [Op("PRELU", ["x", "a"], ["y"])], ["x"] if alpha_const else ["x", "a"], ["y"],
    )  # fmt: skip


def check(shape, alpha_shape, q, seed, alpha_const=True):
    rng = np.random.default_rng(seed)
    q = [(qscale(s), z) for s, z in q]
    x, alpha = int8_input(rng, shape), int8_input(rng, alpha_shape)
    feed = {"x": x} if alpha_const else {"x": x, "a": alpha}
    got = native_matches_interpreter(_model(shape, alpha, q, alpha_const), [feed])[0]["y"]
    (m1, s1), (m2, s2) = multipliers(q[0][0], q[1][0], q[2][0])
    np.testing.assert_array_equal(got, prelu(x, alpha, q[0][1], q[1][1], q[2][1], m1, s1, m2, s2))


LAYOUTS = ["channel", "hw_shared", "full", "single"]


def _alpha_shape(shape, layout):
    if layout == "channel":
        return shape[-1:]
    if layout == "hw_shared":
        return (1,) * (len(shape) - 2) + shape[-1:] if len(shape) >= 2 else shape[-1:]
    if layout == "full":
        return shape[1:] if len(shape) > 1 else shape
    return (1,)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple), layout=st.sampled_from(LAYOUTS),
       si=st.floats(0.002, 0.5), sa=st.floats(0.001, 0.5), so=st.floats(0.002, 0.5), zi=st.integers(-128, 127),
       za=st.integers(-128, 127), zo=st.integers(-128, 127), seed=st.integers(0, 2**31))  # fmt: skip
@example(shape=(1, 8, 8, 16), layout="hw_shared", si=0.05, sa=0.004, so=0.03, zi=-10, za=0, zo=-40, seed=0)
@example(shape=(1, 5, 5, 3), layout="channel", si=0.2, sa=0.01, so=0.01, zi=5, za=-7, zo=3, seed=1)  # 20x: shift
def test_prelu(shape, layout, si, sa, so, zi, za, zo, seed):
    check(shape, _alpha_shape(shape, layout), [(si, zi), (sa, za), (so, zo)], seed)


@pytest.mark.parametrize("seed", range(3))
def test_prelu_alpha_activation(seed):
    """alpha as a second model input (not a constant): the same kernel, strides over an arena tensor."""
    check((2, 4, 6, 5), (1, 1, 5), [(0.03, 4), (0.02, -3), (0.025, -8)], seed, alpha_const=False)


def test_prelu_alpha_must_broadcast_into_the_input():
    alpha = np.ones((4, 1, 1), np.int8)
    model = _model((1, 1, 1, 3), alpha, [(0.1, 0)] * 3, out_shape=(1, 4, 1, 3))
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(PRELU\): output shape \[1, 4, 1, 3\] differs"):
        NativeBackend(model)
