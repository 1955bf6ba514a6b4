"""MEAN: native == interpreter == numpy reference, keep_dims or not, over contiguous axes."""

from __future__ import annotations

import numpy as np
from conftest import litert_semantics
from edge_maas.kernels.ref.mean import mean, mean_params
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter, qscale


@litert_semantics("its int8 MEAN over axes (1, 2) is 1 LSB off ai-edge-litert's")
@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9), st.integers(1, 40)),
    axes=st.sampled_from([(1, 2), (2, 1), (1,), (2,), (3,), (2, 3), (-3, -2)]), keep=st.booleans(),
    same_quant=st.booleans(), zi=st.integers(-128, 127), zo=st.integers(-128, 127),
    si=st.floats(0.002, 0.1), so=st.floats(0.002, 0.1), seed=st.integers(0, 2**31),
)  # fmt: skip
def test_mean(shape, axes, keep, same_quant, zi, zo, si, so, seed):
    si, so = qscale(si), qscale(so)
    if same_quant:
        so, zo = si, zi
    rng = np.random.default_rng(seed)
    ax = sorted(a % 4 for a in axes)
    out_shape = tuple(1 if i in ax else d for i, d in enumerate(shape)) if keep else \
        tuple(d for i, d in enumerate(shape) if i not in ax)  # fmt: skip
    model = build_model(
        [T("x", shape, "int8", [si], [zi]), T("a", (len(axes),), "int32", data=np.array(axes, np.int32)),
         T("y", out_shape, "int8", [so], [zo])],
        [Op("MEAN", ["x", "a"], ["y"], "ReducerOptions", dict(keepDims=keep))], ["x"], ["y"],
    )  # fmt: skip
    x = int8_input(rng, shape)
    got = native_matches_interpreter(model, [{"x": x}])[0]["y"]
    outer, count = int(np.prod(shape[: ax[0]])), int(np.prod(shape[ax[0] : ax[-1] + 1]))
    inner = int(np.prod(shape[ax[-1] + 1 :]))
    p = mean_params(si, zi, so, zo, count, inner, keep and ax == [1, 2])
    np.testing.assert_array_equal(got.reshape(-1), mean(x.reshape(outer, count, inner), p).reshape(-1))
