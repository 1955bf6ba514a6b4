"""The native executor refuses what it cannot run exactly, at load, with a message
naming the problem; it never gives a silently wrong answer."""

from __future__ import annotations

import numpy as np
import pytest
from oneop import Op, T, build_model

from edge_maas.backends.native import NativeBackend
from edge_maas.errors import ModelFormatError, TensorMismatchError, UnsupportedOpError
from edge_maas.native.arena import plan_arena


def _fc(bias_scale: float, per_channel_bias: bool = False) -> bytes:
    w = np.ones((4, 3), np.int8)
    return build_model(
        [T("x", (1, 3), "int8", [0.5], [0]), T("w", (4, 3), "int8", [0.1], [0], 0, w),
         T("b", (4,), "int32", [bias_scale] * (4 if per_channel_bias else 1), [0] * (4 if per_channel_bias else 1),
           0, np.zeros(4, np.int32)),
         T("y", (1, 4), "int8", [1.0], [0])],
        [Op("FULLY_CONNECTED", ["x", "w", "b"], ["y"], "FullyConnectedOptions", {})], ["x"], ["y"],
    )  # fmt: skip


def test_unsupported_op_is_named_at_load():
    model = build_model(
        [T("x", (1, 8), "int8", [0.1], [0]), T("y", (1, 8), "int8", [1 / 128], [0])], [Op("ABS", ["x"], ["y"])],
        ["x"], ["y"],
    )  # fmt: skip
    with pytest.raises(UnsupportedOpError, match="no kernel for ABS.*litert"):
        NativeBackend(model)


def test_bias_scale_must_match_input_times_weight_scale():
    NativeBackend(_fc(0.05))  # 0.5 * 0.1: fine
    with pytest.raises(UnsupportedOpError, match="bias scale 0.06 .*does not match input scale x weight scale = 0.05"):
        NativeBackend(_fc(0.06))


def test_float_op_is_refused():
    model = build_model(
        [T("x", (1, 4), "float32"), T("y", (1, 4), "float32")],
        [Op("ADD", ["x", "x"], ["y"], "AddOptions", {})], ["x"], ["y"],
    )  # fmt: skip
    with pytest.raises(UnsupportedOpError, match="float32"):
        NativeBackend(model)


def test_wrong_input_shape_and_dtype_are_refused_and_backend_keeps_working():
    be = NativeBackend(_fc(0.05))
    x = np.array([[1, 2, 3]], np.int8)
    good = be.run({"x": x})["y"]
    with pytest.raises(TensorMismatchError, match=r"is int8\[1, 4\]; expected int8\[1, 3\]"):
        be.run({"x": np.zeros((1, 4), np.int8)})
    with pytest.raises(TensorMismatchError, match="float32"):
        be.run({"x": x.astype(np.float32)})
    with pytest.raises(TensorMismatchError, match="missing input"):
        be.run({})
    np.testing.assert_array_equal(be.run({"x": x})["y"], good)


def test_outputs_are_fresh_arrays():
    be = NativeBackend(_fc(0.05))
    a = be.run({"x": np.array([[1, 2, 3]], np.int8)})["y"]
    b = be.run({"x": np.array([[3, 2, 1]], np.int8)})["y"]
    assert a is not b and not np.shares_memory(a, b)


def test_corrupt_model_is_a_format_error():
    blob = bytearray(_fc(0.05))
    with pytest.raises(ModelFormatError):
        NativeBackend(bytes(blob[: len(blob) // 2]))


def test_arena_never_overlaps_live_tensors():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        sizes = {i: int(rng.integers(1, 5000)) for i in range(n)}
        life = {}
        for i in range(n):
            a = int(rng.integers(-1, 20))
            life[i] = (a, a + int(rng.integers(0, 8)))
        plan = plan_arena(sizes, life)
        for i in range(n):
            assert plan.offsets[i] % 64 == 0 and plan.offsets[i] + sizes[i] <= plan.size
            for j in range(i):
                alive_together = life[i][0] <= life[j][1] and life[j][0] <= life[i][1]
                disjoint = plan.offsets[i] + sizes[i] <= plan.offsets[j] or plan.offsets[j] + sizes[j] <= plan.offsets[i]
                assert disjoint or not alive_together, (i, j)
        assert plan.size <= plan.unshared
