"""FULLY_CONNECTED: native == interpreter == numpy reference (batch rows, per-tensor and
per-channel weights, with and without bias, fused activations)."""

from __future__ import annotations

import numpy as np
import pytest
from arm import ruy_single_rounding
from edge_maas.kernels.ref.fully_connected import fully_connected
from hypothesis import given, settings
from hypothesis import strategies as st
from oneop import Op, T, build_model, int8_input, native_matches_interpreter, qscale

from edge_maas.native.quant import activation_range, conv_output_multipliers


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 9), k=st.integers(1, 80), n=st.integers(1, 70), act=st.sampled_from([0, 1, 3]),
    per_channel=st.booleans(), has_bias=st.booleans(), in_zp=st.integers(-128, 127),
    out_zp=st.integers(-128, 127), seed=st.integers(0, 2**31),
)  # fmt: skip
def test_fully_connected(rows, k, n, act, per_channel, has_bias, in_zp, out_zp, seed):
    _check(rows, k, n, act, per_channel, has_bias, in_zp, out_zp, seed)


# The VNNI GEMM's tiles on every ISA: one row (4 accumulator sets over k), 5 and 13 rows (tiles, then 4-row and
# single-row tails), 1-9 panels of 16 units, k with and without 16-byte groups to spare.
@pytest.mark.parametrize("rows", [1, 5, 13])
@pytest.mark.parametrize("n", [16, 40, 70, 130])
def test_fully_connected_vnni_tiles(rows, n):
    _check(rows, 50 if n % 20 else 67, n, 1, n % 3 == 0, True, -7, 5, rows * 1000 + n)


def _check(rows, k, n, act, per_channel, has_bias, in_zp, out_zp, seed):
    rng = np.random.default_rng(seed)
    in_s, out_s = qscale(rng.uniform(0.01, 0.1)), qscale(rng.uniform(0.05, 1.0))
    w_s = [qscale(v) for v in rng.uniform(0.001, 0.05, n if per_channel else 1)]
    weights = rng.integers(-127, 128, (n, k), dtype=np.int8)
    bias = rng.integers(-20000, 20000, n).astype(np.int32) if has_bias else np.zeros(n, np.int32)
    tensors = [
        T("x", (rows, k), "int8", [in_s], [in_zp]),
        T("w", (n, k), "int8", w_s, [0] * len(w_s), 0, weights),
        T("y", (rows, n), "int8", [out_s], [out_zp]),
    ]
    if has_bias:
        tensors.append(T("b", (n,), "int32", [in_s * s for s in w_s], [0] * len(w_s), 0, bias))
    model = build_model(
        tensors,
        [Op("FULLY_CONNECTED", ["x", "w", "b" if has_bias else ""], ["y"], "FullyConnectedOptions",
            {"fusedActivationFunction": act})],
        ["x"], ["y"],
    )  # fmt: skip
    x = int8_input(rng, (rows, k))
    mult, shift = conv_output_multipliers("test", in_s, w_s, out_s, n, float_product=not per_channel)
    lo, hi = activation_range(act, out_s, out_zp, "test")

    def ruy(feed):  # aarch64: the interpreter's output stage is ruy's single rounding (tests/arm.py)
        acc = (feed["x"].astype(np.int64) - in_zp) @ weights.astype(np.int64).T + bias
        return {"y": ruy_single_rounding(acc, mult, shift, out_zp, lo, hi)}

    got = native_matches_interpreter(model, [{"x": x}], arm=ruy)[0]["y"]
    np.testing.assert_array_equal(
        got, fully_connected(x, weights, bias, mult, shift, in_zp=in_zp, out_zp=out_zp, act_min=lo, act_max=hi)
    )
