"""Standalone RELU / RELU6 / RELU_N1_TO_1 / RELU_0_TO_1 and LEAKY_RELU on int8: native (every ISA) ==
interpreter == numpy tables (kernels/ref/relu.py), with rescaling (input and output scales differ) and
sizes with and without a 16-element tail."""

from __future__ import annotations

import numpy as np
from edge_maas.kernels.ref.relu import leaky_relu_table, relu_table
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, native_matches_interpreter, qscale

RELUS = ["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"]


def _run(op, options_type, options, n, si, zi, so, zo, seed):
    rng = np.random.default_rng(seed)
    model = build_model([T("x", (1, n), "int8", [si], [zi]), T("y", (1, n), "int8", [so], [zo])],
                        [Op(op, ["x"], ["y"], options_type, options)], ["x"], ["y"])  # fmt: skip
    every = np.arange(256, dtype=np.uint8).view(np.int8)
    feeds = [{"x": rng.integers(-128, 128, (1, n), dtype=np.int8)}, {"x": np.resize(every, (1, n))}]
    outs = native_matches_interpreter(model, feeds)
    return feeds, outs


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(RELUS), n=st.sampled_from([1, 15, 16, 37, 256, 300]), si=st.floats(0.005, 0.2),
       ratio=st.floats(0.3, 3.0), zi=st.integers(-128, 127), zo=st.integers(-128, 127), seed=st.integers(0, 2**31))  # fmt: skip
def test_relu(op, n, si, ratio, zi, zo, seed):
    si = qscale(si)
    so = qscale(si * ratio)
    feeds, outs = _run(op, None, {}, n, si, zi, so, zo, seed)
    table = relu_table(op, si, zi, so, zo)
    for feed, out in zip(feeds, outs):
        np.testing.assert_array_equal(out["y"], table[feed["x"].view(np.uint8)])


@settings(max_examples=40, deadline=None)
@given(n=st.sampled_from([1, 15, 16, 37, 256, 300]), si=st.floats(0.005, 0.2), ratio=st.floats(0.3, 3.0),
       alpha=st.sampled_from([0.01, 0.1, 0.2, 0.3, 0.5, 0.99]), zi=st.integers(-128, 127), zo=st.integers(-128, 127),
       seed=st.integers(0, 2**31))  # fmt: skip
def test_leaky_relu(n, si, ratio, alpha, zi, zo, seed):
    si = qscale(si)
    so = qscale(si * ratio)
    feeds, outs = _run("LEAKY_RELU", "LeakyReluOptions", {"alpha": alpha}, n, si, zi, so, zo, seed)
    table = leaky_relu_table(alpha, si, zi, so, zo)
    for feed, out in zip(feeds, outs):
        np.testing.assert_array_equal(out["y"], table[feed["x"].view(np.uint8)])
