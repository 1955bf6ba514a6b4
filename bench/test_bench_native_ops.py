"""Native kernels vs the interpreter's built-in kernels on one-op models, single thread (issue 12's per-op cases).

    .venv/bin/python -m pytest bench/test_bench_native_ops.py --benchmark-enable --benchmark-min-rounds=20

Each group is one op run by the interpreter without delegates (``litert_builtin``), by the native executor on
the best ISA (``native``) and on the portable C path (``native_portable``), in the same run, so the ratio
native / built-in is read inside a group.  The cases are the shapes the issue measured slow: a depthwise
convolution with depth multiplier 8 on one input channel (the first layer of a speech CNN on 49x40 log-mel
frames), depth multiplier 2 on 16 channels, depth multiplier 1 at MobileNetV2 0.35's shapes (48x48x16, the
stride-2 48x48x48, 6x6x144: the largest depthwise costs of the model, and its many small layers), 3x3 CONV_2D
with few channels (16 -> 16 on 32x32, ResNet-8's first stack; 3 -> 16, its stem) and a 1x1 CONV_2D 8 -> 48 on
48x48 (MobileNetV2 0.35's largest expansion).  Weights, scales and inputs are seeded random.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from edge_maas.kernels import executor as ex

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.backends.native import NativeBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from oneop import Op, T, build_model, qscale  # the per-op tests' model builder

# name: (op, input HWC, kernel, stride, out channels, depth multiplier (depthwise only))
CASES = {
    "dw3x3_dm8_49x40x1": ("DEPTHWISE_CONV_2D", (49, 40, 1), 3, 1, 8, 8),
    "dw3x3_dm2_25x20x16": ("DEPTHWISE_CONV_2D", (25, 20, 16), 3, 1, 32, 2),
    "dw3x3_dm1_48x48x8": ("DEPTHWISE_CONV_2D", (48, 48, 8), 3, 1, 8, 1),
    "dw3x3_dm1_48x48x16": ("DEPTHWISE_CONV_2D", (48, 48, 16), 3, 1, 16, 1),
    "dw3x3_dm1_s2_48x48x48": ("DEPTHWISE_CONV_2D", (48, 48, 48), 3, 2, 48, 1),
    "dw3x3_dm1_6x6x144": ("DEPTHWISE_CONV_2D", (6, 6, 144), 3, 1, 144, 1),
    "conv3x3_16to16_32x32": ("CONV_2D", (32, 32, 16), 3, 1, 16, None),
    "conv3x3_3to16_32x32": ("CONV_2D", (32, 32, 3), 3, 1, 16, None),
    "conv3x3_8to16_s2_49x40": ("CONV_2D", (49, 40, 8), 3, 2, 16, None),
    "conv1x1_8to48_48x48": ("CONV_2D", (48, 48, 8), 1, 1, 48, None),
}
RUNNERS = ["litert_builtin", "native", "native_portable"]


def one_op_model(name: str) -> bytes:
    """The case as a one-op int8 model (SAME padding, per-channel weight scales, ReLU)."""
    op, (h, w, c), k, stride, o, dm = CASES[name]
    rng = np.random.default_rng(12)
    oh, ow = (h + stride - 1) // stride, (w + stride - 1) // stride
    in_s, out_s = qscale(0.05), qscale(0.2)
    w_s = [qscale(v) for v in rng.uniform(0.002, 0.02, o)]
    bias = rng.integers(-2000, 2000, o).astype(np.int32)
    if op == "CONV_2D":
        weights = rng.integers(-127, 128, (o, k, k, c), dtype=np.int8)
        wt = T("w", (o, k, k, c), "int8", w_s, [0] * o, 0, weights)
        opts = ("Conv2DOptions", {})
    else:
        weights = rng.integers(-127, 128, (1, k, k, o), dtype=np.int8)
        wt = T("w", (1, k, k, o), "int8", w_s, [0] * o, 3, weights)
        opts = ("DepthwiseConv2DOptions", {"depthMultiplier": dm})
    return build_model(
        [
            T("x", (1, h, w, c), "int8", [in_s], [-3]),
            wt,
            T("b", (o,), "int32", [in_s * s for s in w_s], [0] * o, 0, bias),
            T("y", (1, oh, ow, o), "int8", [out_s], [-20]),
        ],
        [Op(op, ["x", "w", "b"], ["y"], opts[0], dict(padding=0, strideH=stride, strideW=stride,
                                                      fusedActivationFunction=1, **opts[1]))],
        ["x"], ["y"],
    )  # fmt: skip


@pytest.mark.parametrize("kind", RUNNERS)
@pytest.mark.parametrize("name", list(CASES))
def test_op(benchmark, name, kind):
    blob = one_op_model(name)
    h, w, c = CASES[name][1]
    feed = {"x": np.random.default_rng(3).integers(-128, 128, (1, h, w, c), dtype=np.int8)}
    _bench(benchmark, blob, feed, name, kind)


def _bench(benchmark, blob: bytes, feed: dict, name: str, kind: str) -> None:
    """Time one runner of RUNNERS on the model, after checking its output is the built-in kernels' bytes."""
    want = LiteRTBackend(blob, threads=1, xnnpack=False).run(feed)["y"]
    native = kind != "litert_builtin"
    runner = NativeBackend(blob, threads=1) if native else LiteRTBackend(blob, threads=1, xnnpack=False)
    benchmark.group = f"native-vs-builtin op {name}"
    before = ex.isa()
    if kind == "native_portable":
        ex.set_isa("portable")
    benchmark.extra_info["isa"] = ex.isa() if native else "-"
    try:
        assert np.array_equal(runner.run(feed)["y"], want)  # a fast wrong kernel is no result
        benchmark(runner.run, feed)
    finally:
        ex.set_isa(before)


# The small ops (issue 12: ADD was 1.5 ns/element, MEAN 14 us in MobileNetV2): name -> (op, input shapes, options)
SMALL_CASES = {
    "add_32x32x16": ("ADD", [(1, 32, 32, 16), (1, 32, 32, 16)], ("AddOptions", {})),  # ResNet-8's residual add
    "add_12x12x16_bcast": ("ADD", [(1, 12, 12, 16), (1, 1, 1, 16)], ("AddOptions", {})),
    "sub_32x32x16": ("SUB", [(1, 32, 32, 16), (1, 32, 32, 16)], ("SubOptions", {})),
    "mul_32x32x16": ("MUL", [(1, 32, 32, 16), (1, 32, 32, 16)], ("MulOptions", {})),
    "mean_3x3x1280": ("MEAN", [(1, 3, 3, 1280)], ("ReducerOptions", {"keepDims": True})),  # MobileNetV2's head
    "avgpool2x2_32x32x64": ("AVERAGE_POOL_2D", [(1, 32, 32, 64)], ("Pool2DOptions", {})),
    "maxpool2x2_32x32x64": ("MAX_POOL_2D", [(1, 32, 32, 64)], ("Pool2DOptions", {})),
    # the 256-entry table kernel (LOGISTIC, TANH, GELU, ELU, EXP, HARD_SWISH): 2x built-in as a scalar loop
    "logistic_32x32x32": ("LOGISTIC", [(1, 32, 32, 32)], (None, {})),
    "tanh_32x32x32": ("TANH", [(1, 32, 32, 32)], (None, {})),
    "log_softmax_8x1000": ("LOG_SOFTMAX", [(8, 1000)], (None, {})),  # 8 ImageNet heads
    "log_softmax_1x1000": ("LOG_SOFTMAX", [(1, 1000)], (None, {})),  # one: no rows to interleave
    "reduce_max_16x16x128_hw": ("REDUCE_MAX", [(1, 16, 16, 128)], ("ReducerOptions", {"keepDims": True})),
}
# the int8 output quantization the converter fixes for these ops (the interpreter refuses others)
FIXED_OUTPUT = {"LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0), "LOG_SOFTMAX": (16 / 256, 127)}


def small_op_model(name: str) -> bytes:
    """The case as a one-op int8 model: seeded scales and zero points; pooling 2x2 stride 2, MEAN and REDUCE_MAX
    over H, W (REDUCE_MAX keeps the input's quantization, as the interpreter requires); LOGISTIC, TANH and
    LOG_SOFTMAX with their fixed output quantization."""
    op, shapes, (opt_name, opts) = SMALL_CASES[name]
    rng = np.random.default_rng(22)
    scales = [qscale(v) for v in rng.uniform(0.01, 0.1, len(shapes) + 1)]
    zps = [int(v) for v in rng.integers(-20, 20, len(shapes) + 1)]
    tensors = [T(f"x{i}", s, "int8", [scales[i]], [zps[i]]) for i, s in enumerate(shapes)]
    inputs = [t.name for t in tensors]
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        scales[-1], zps[-1] = scales[0], zps[0]  # pooling keeps the quantization
        opts = {"padding": 1, "strideH": 2, "strideW": 2, "filterHeight": 2, "filterWidth": 2}
        (b, h, w, c) = shapes[0]
        out_shape = (b, h // 2, w // 2, c)
    elif op in FIXED_OUTPUT:
        scales[-1], zps[-1] = FIXED_OUTPUT[op]
        out_shape = shapes[0]
    elif op in ("MEAN", "REDUCE_MAX"):
        if op == "REDUCE_MAX":
            scales[-1], zps[-1] = scales[0], zps[0]
        tensors.append(T("axes", (2,), "int32", [], [], 0, np.array([1, 2], np.int32)))
        inputs.append("axes")
        (b, h, w, c) = shapes[0]
        out_shape = (b, 1, 1, c)
    else:
        out_shape = tuple(max(d) for d in zip(*shapes))
    tensors.append(T("y", out_shape, "int8", [scales[-1]], [zps[-1]]))
    return build_model(tensors, [Op(op, inputs, ["y"], opt_name, opts)], inputs[: len(shapes)], ["y"])


@pytest.mark.parametrize("kind", RUNNERS)
@pytest.mark.parametrize("name", list(SMALL_CASES))
def test_small_op(benchmark, name, kind):
    blob = small_op_model(name)
    rng = np.random.default_rng(3)
    feed = {f"x{i}": rng.integers(-128, 128, s, dtype=np.int8) for i, s in enumerate(SMALL_CASES[name][1])}
    _bench(benchmark, blob, feed, name, kind)
