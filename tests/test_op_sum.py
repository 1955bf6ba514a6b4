"""SUM on int8: native (every ISA) == interpreter == numpy (int32 sums, then the interpreter's float32 rescale:
roundf(sum * (s_in / s_out) + (-zp_in * scale * count)) + zp_out) over random ranks, axis sets and quantizations,
keep_dims or not."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter, qscale


def _model(shape, axes, keep, q):
    (si, zi), (so, zo) = q
    rank = len(shape)
    red = {a % rank for a in axes}
    out_shape = tuple(1 if i in red else d for i, d in enumerate(shape)) if keep else tuple(
        d for i, d in enumerate(shape) if i not in red)  # fmt: skip
    return build_model(
        [T("x", shape, "int8", [si], [zi]), T("a", (len(axes),), "int32", data=np.array(axes, np.int32)),
         T("y", out_shape, "int8", [so], [zo])],
        [Op("SUM", ["x", "a"], ["y"], "ReducerOptions", {"keepDims": keep})], ["x"], ["y"],
    )  # fmt: skip


def reference(x, axes, keep, q) -> np.ndarray:
    (si, zi), (so, zo) = q
    f = np.float32
    red = tuple(sorted({a % x.ndim for a in axes}))
    acc = x.astype(np.int64).sum(axis=red, keepdims=keep)
    count = int(np.prod([x.shape[a] for a in red]))
    scale = f(si) / f(so)
    bias = f(f(-zi) * scale) * f(count)
    v = (acc.astype(np.float32) * scale + bias).astype(np.float32)
    r = np.sign(v) * np.floor(np.abs(v.astype(np.float64)) + 0.5)  # roundf: half away from zero
    return np.clip(r.astype(np.int64) + zo, -128, 127).astype(np.int8)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=5), picks=st.lists(st.integers(-5, 4), min_size=1,
       max_size=3), keep=st.booleans(), si=st.floats(0.005, 0.2), so=st.floats(0.01, 4.0), zi=st.integers(-128, 127),
       zo=st.integers(-128, 127), seed=st.integers(0, 2**31))  # fmt: skip
@example(shape=[1, 7, 7, 32], picks=[1, 2], keep=True, si=0.02, so=0.5, zi=-5, zo=3, seed=0)
def test_sum(shape, picks, keep, si, so, zi, zo, seed):
    rank = len(shape)
    axes = [p % rank - (rank if p < 0 else 0) for p in picks]
    q = [(qscale(si), zi), (qscale(so), zo)]
    x = int8_input(np.random.default_rng(seed), tuple(shape))
    got = native_matches_interpreter(_model(tuple(shape), axes, keep, q), [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, reference(x, axes, keep, q))
