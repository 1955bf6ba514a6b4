"""The native backend refuses exactly what the interpreter refuses at prepare.

Each case builds a one-op model that breaks one of the interpreter's prepare-time checks
(tensorflow/lite/kernels/*.cc Prepare, kernel_util.cc, quantization_util.cc) and asserts both
that the real interpreter (built-in kernels) refuses it at allocate_tensors -- so we mirror
reality, not a guess -- and that the native backend refuses it at load with an EdgeMaasError
naming the op and the check.  Before these checks, several of these models ran natively
into wrong numbers with exit 0, or died with a Python traceback.

The unbroken models are accepted by both and give identical bytes, so every refusal below is
caused by the one change the case makes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
from arm import ONE_LSB, dequantize_aarch64
from conftest import INTERPRETER, skip_unless_litert_semantics
from oneop import Op, T, build_model, int8_input, native_matches_interpreter

from edge_maas.backends.litert import interpreter_module
from edge_maas.backends.native import NativeBackend
from edge_maas.errors import EdgeMaasError

IS, OS = 0.05, 0.1  # input and output scales of the GEMM-type builders


class Spec:
    """A one-op model under construction: tensors by name, the op, graph inputs and outputs."""

    def __init__(self, tensors: list[T], op: Op, inputs: list[str], outputs: list[str]):
        self.tensors = {t.name: t for t in tensors}
        self.op, self.inputs, self.outputs = op, inputs, outputs

    def t(self, name: str, **changes) -> Spec:
        self.tensors[name] = dataclasses.replace(self.tensors[name], **changes)
        return self

    def opt(self, **changes) -> Spec:
        self.op.options.update(changes)
        return self

    def drop_input(self, k: int) -> Spec:
        self.op.inputs = list(self.op.inputs[:k])
        return self

    def build(self) -> bytes:
        used = set(self.op.inputs) | set(self.op.outputs)
        return build_model([t for t in self.tensors.values() if t.name in used], [self.op], self.inputs, self.outputs)


def _w(shape, seed=0):
    return np.random.default_rng(seed).integers(-127, 128, shape).astype(np.int8)


def _b(n, seed=1):
    return np.random.default_rng(seed).integers(-500, 500, n).astype(np.int32)


def conv(per_channel: bool = True) -> Spec:
    ws = [0.01, 0.02, 0.015, 0.03] if per_channel else [0.02]
    return Spec([
        T("x", (1, 5, 5, 3), "int8", [IS], [2]),
        T("w", (4, 3, 3, 3), "int8", ws, [0] * len(ws), 0, _w((4, 3, 3, 3))),
        T("b", (4,), "int32", [IS * s for s in ws], [0] * len(ws), 0, _b(4)),
        T("y", (1, 5, 5, 4), "int8", [OS], [-3]),
    ], Op("CONV_2D", ["x", "w", "b"], ["y"], "Conv2DOptions", dict(
        padding=0, strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1, fusedActivationFunction=0)),
        ["x"], ["y"])  # fmt: skip


def dwconv(per_channel: bool = True) -> Spec:
    ws = [0.01 + 0.002 * i for i in range(6)] if per_channel else [0.02]
    return Spec([
        T("x", (1, 5, 5, 3), "int8", [IS], [2]),
        T("w", (1, 3, 3, 6), "int8", ws, [0] * len(ws), 3, _w((1, 3, 3, 6))),
        T("b", (6,), "int32", [IS * s for s in ws], [0] * len(ws), 0, _b(6)),
        T("y", (1, 5, 5, 6), "int8", [OS], [-3]),
    ], Op("DEPTHWISE_CONV_2D", ["x", "w", "b"], ["y"], "DepthwiseConv2DOptions", dict(
        padding=0, strideH=1, strideW=1, depthMultiplier=2, dilationHFactor=1, dilationWFactor=1,
        fusedActivationFunction=0)), ["x"], ["y"])  # fmt: skip


def fc() -> Spec:
    return Spec([
        T("x", (2, 8), "int8", [IS], [2]),
        T("w", (6, 8), "int8", [0.02], [0], 0, _w((6, 8))),
        T("b", (6,), "int32", [IS * 0.02], [0], 0, _b(6)),
        T("y", (2, 6), "int8", [OS], [-3]),
    ], Op("FULLY_CONNECTED", ["x", "w", "b"], ["y"], "FullyConnectedOptions", dict(fusedActivationFunction=0)),
        ["x"], ["y"])  # fmt: skip


def binary(op: str) -> Spec:
    return Spec(
        [T("a", (1, 4, 4, 8), "int8", [0.05], [1]), T("b", (1, 4, 4, 8), "int8", [0.07], [-2]),
         T("y", (1, 4, 4, 8), "int8", [0.1], [3])],
        Op(op, ["a", "b"], ["y"], "AddOptions" if op == "ADD" else "MulOptions", dict(fusedActivationFunction=0)),
        ["a", "b"], ["y"],
    )  # fmt: skip


def pool(op: str) -> Spec:
    return Spec(
        [T("x", (1, 6, 6, 4), "int8", [0.05], [1]), T("y", (1, 3, 3, 4), "int8", [0.05], [1])],
        Op(op, ["x"], ["y"], "Pool2DOptions", dict(padding=1, strideH=2, strideW=2, filterHeight=2, filterWidth=2,
                                                   fusedActivationFunction=0)),
        ["x"], ["y"],
    )  # fmt: skip


def softmax() -> Spec:
    return Spec([T("x", (2, 10), "int8", [0.05], [1]), T("y", (2, 10), "int8", [1 / 256], [-128])],
                Op("SOFTMAX", ["x"], ["y"], "SoftmaxOptions", dict(beta=1.0)), ["x"], ["y"])  # fmt: skip


def unary(op: str, so: float = 1 / 256, zo: int = -128) -> Spec:
    return Spec([T("x", (1, 20), "int8", [0.05], [1]), T("y", (1, 20), "int8", [so], [zo])],
                Op(op, ["x"], ["y"]), ["x"], ["y"])  # fmt: skip


def mean() -> Spec:
    return Spec(
        [T("x", (1, 3, 3, 4), "int8", [0.05], [1]), T("a", (2,), "int32", data=np.array([1, 2], np.int32)),
         T("y", (1, 1, 1, 4), "int8", [0.04], [2])],
        Op("MEAN", ["x", "a"], ["y"], "ReducerOptions", dict(keepDims=True)), ["x"], ["y"],
    )  # fmt: skip


def quantize() -> Spec:
    return Spec([T("x", (1, 10), "float32"), T("y", (1, 10), "int8", [0.05], [3])], Op("QUANTIZE", ["x"], ["y"]),
                ["x"], ["y"])  # fmt: skip


def requantize() -> Spec:
    return Spec([T("x", (1, 10), "int8", [0.05], [1]), T("y", (1, 10), "int8", [0.07], [3])],
                Op("QUANTIZE", ["x"], ["y"]), ["x"], ["y"])  # fmt: skip


def dequantize() -> Spec:
    return Spec([T("x", (1, 10), "int8", [0.05], [1]), T("y", (1, 10), "float32")], Op("DEQUANTIZE", ["x"], ["y"]),
                ["x"], ["y"])  # fmt: skip


def pad(v2: bool = False) -> Spec:
    ts = [T("x", (1, 3, 3, 2), "int8", [0.05], [1]),
          T("p", (4, 2), "int32", data=np.array([[0, 0], [1, 1], [0, 2], [0, 0]], np.int32)),
          T("y", (1, 5, 5, 2), "int8", [0.05], [1]), T("v", (1,), "int8", [0.05], [1], 0, np.array([-5], np.int8))]
    return Spec(ts, Op("PADV2" if v2 else "PAD", ["x", "p", "v"] if v2 else ["x", "p"], ["y"]), ["x"], ["y"])


def pad_rank6() -> Spec:
    return pad().t("x", shape=(1, 1, 1, 3, 3, 2)).t("y", shape=(1, 1, 1, 3, 3, 2)) \
        .t("p", shape=(6, 2), data=np.zeros((6, 2), np.int32))  # fmt: skip


def concat() -> Spec:
    return Spec(
        [T("a", (1, 2, 3), "int8", [0.05], [1]), T("b", (1, 4, 3), "int8", [0.05], [1]),
         T("y", (1, 6, 3), "int8", [0.05], [1])],
        Op("CONCATENATION", ["a", "b"], ["y"], "ConcatenationOptions", dict(axis=1)), ["a", "b"], ["y"],
    )  # fmt: skip


def reshape(op: str = "RESHAPE", shape=(3, 4)) -> Spec:
    return Spec(
        [T("x", (1, 2, 6), "int8", [0.05], [1]), T("s", (len(shape),), "int32", data=np.array(shape, np.int32)),
         T("y", (3, 4), "int8", [0.05], [1])],
        Op(op, ["x", "s"], ["y"]), ["x"], ["y"],
    )  # fmt: skip


def squeeze(dims) -> Spec:
    return Spec([T("x", (1, 2, 1, 6), "int8", [0.05], [1]), T("y", (2, 6), "int8", [0.05], [1])],
                Op("SQUEEZE", ["x"], ["y"], "SqueezeOptions", dict(squeezeDims=dims)), ["x"], ["y"])  # fmt: skip


def expand_dims(axis: int = 1, dtype: str = "int32") -> Spec:
    return Spec(
        [T("x", (2, 6), "int8", [0.05], [1]), T("a", (1,), dtype, data=np.array([axis])),
         T("y", (2, 1, 6), "int8", [0.05], [1])],
        Op("EXPAND_DIMS", ["x", "a"], ["y"]), ["x"], ["y"],
    )  # fmt: skip


def sslice() -> Spec:
    return Spec(
        [T("x", (1, 6, 4), "int8", [0.05], [1]), T("b", (3,), "int32", data=np.array([0, 1, 0], np.int32)),
         T("e", (3,), "int32", data=np.array([1, 5, 4], np.int32)),
         T("s", (3,), "int32", data=np.array([1, 2, 1], np.int32)), T("y", (1, 2, 4), "int8", [0.05], [1])],
        Op("STRIDED_SLICE", ["x", "b", "e", "s"], ["y"], "StridedSliceOptions", dict()), ["x"], ["y"],
    )  # fmt: skip


BASELINES = {
    "conv": conv, "conv_per_tensor": lambda: conv(False), "dwconv": dwconv, "dwconv_per_tensor": lambda: dwconv(False),
    "fc": fc, "add": lambda: binary("ADD"), "mul": lambda: binary("MUL"), "avg_pool": lambda: pool("AVERAGE_POOL_2D"),
    "max_pool": lambda: pool("MAX_POOL_2D"), "softmax": softmax, "logistic": lambda: unary("LOGISTIC"),
    "hard_swish": lambda: unary("HARD_SWISH", 0.05, 3), "mean": mean, "quantize": quantize, "requantize": requantize,
    "dequantize": dequantize, "pad": pad, "padv2": lambda: pad(True), "concat": concat, "reshape": reshape,
    "squeeze": lambda: squeeze([0, 2]), "expand_dims": expand_dims, "strided_slice": sslice,
    # accepted by the interpreter, so native must accept them and give the same bytes
    "logistic_output_zp_0": lambda: unary("LOGISTIC", zo=0),  # only the scale is pinned for int8 LOGISTIC
    "softmax_scale_within_0.1%": lambda: softmax().t("y", scale=[1 / 256 * 1.0005]),
    "reshape_stretch": lambda: reshape(shape=(3, -1)),
    "expand_dims_negative_axis": lambda: expand_dims(-2, "int64"),
    "pool_stride_above_int16": lambda: pool("MAX_POOL_2D").opt(padding=0, strideH=40000).t("y", shape=(1, 1, 3, 4)),
}  # fmt: skip

# (id, model, what the native error must say); every model breaks exactly one prepare-time check.
CASES: list[tuple[str, Callable[[], Spec], str]] = [
    # CONV_2D (conv.cc Prepare, PopulateConvolutionQuantizationParams, CalculateActivationRangeQuantized)
    ("conv_stride_h_0", lambda: conv().opt(strideH=0), "stride_h 0 out of range"),
    ("conv_stride_w_negative", lambda: conv().opt(strideW=-1), "stride_w -1 out of range"),
    ("conv_stride_above_int16", lambda: conv().opt(strideH=70000), "stride_h 70000 out of range"),
    ("conv_dilation_h_0", lambda: conv().opt(dilationHFactor=0), "dilation_h 0 out of range"),
    ("conv_dilation_w_negative", lambda: conv().opt(dilationWFactor=-2), "dilation_w -2 out of range"),
    ("conv_padding_enum", lambda: conv().opt(padding=5), "padding mode 5"),
    ("conv_no_bias", lambda: conv().drop_input(2), "requires one"),
    ("conv_bias_zero_point", lambda: conv(False).t("b", zero_point=[3]), "bias zero point 3 must be 0"),
    ("conv_bias_int64", lambda: conv().t("b", dtype="int64"), "bias is int64"),
    ("conv_relu6_bound_overflows_int32", lambda: conv().opt(fusedActivationFunction=3).t("y", scale=[1e-9]),
     "overflows int32"),
    ("conv_weight_zero_point", lambda: conv().t("w", zero_point=[1, 0, 0, 0]), "non-zero zero point"),
    ("conv_input_channels", lambda: conv().t("x", shape=(1, 5, 5, 2)), "input has 2 channels, filter 3"),
    ("conv_output_type", lambda: conv().t("y", dtype="int16"), "is int16"),
    ("conv_input_rank", lambda: conv().t("x", shape=(1, 5, 5, 3, 1)), "must be 4-D"),
    ("conv_filter_rank", lambda: conv(False).t("w", shape=(4, 3, 3, 3, 1), data=_w((4, 3, 3, 3, 1))),
     "weights must be 4-D"),
    # DEPTHWISE_CONV_2D (depthwise_conv.cc Prepare)
    ("dw_stride_h_0", lambda: dwconv().opt(strideH=0), "stride_h 0 out of range"),
    ("dw_stride_above_int16", lambda: dwconv().opt(strideW=40000), "stride_w 40000 out of range"),
    ("dw_dilation_h_0", lambda: dwconv().opt(dilationHFactor=0), "dilation_h 0 out of range"),
    ("dw_dilation_w_negative", lambda: dwconv().opt(dilationWFactor=-1), "dilation_w -1 out of range"),
    ("dw_padding_enum", lambda: dwconv().opt(padding=3), "padding mode 3"),
    ("dw_bias_zero_point", lambda: dwconv(False).t("b", zero_point=[2]), "bias zero point 2 must be 0"),
    ("dw_bias_int64", lambda: dwconv().t("b", dtype="int64"), "bias is int64"),
    ("dw_bias_rank", lambda: dwconv(False).t("b", shape=(1, 6), data=_b(6).reshape(1, 6)), "1-D bias"),
    ("dw_relu6_bound_overflows_int32", lambda: dwconv().opt(fusedActivationFunction=3).t("y", scale=[1e-9]),
     "overflows int32"),
    ("dw_filter_dim0", lambda: dwconv(False).t("w", shape=(2, 3, 3, 6), data=_w((2, 3, 3, 6))), "filter shape"),
    ("dw_channels_multiple", lambda: dwconv().t("x", shape=(1, 5, 5, 4)), "does not fit 4 input channels"),
    ("dw_output_type", lambda: dwconv().t("y", dtype="int16"), "is int16"),
    # FULLY_CONNECTED (fully_connected.cc Prepare, GetQuantizedConvolutionMultipler)
    ("fc_bias_scale_vs_output_scale", lambda: fc().t("b", scale=[1.0]), "exceeds 0.02"),
    ("fc_unquantized_bias_small_output_scale",
     lambda: fc().t("b", scale=[], zero_point=[]).t("y", scale=[0.001]), "exceeds 0.02"),
    ("fc_relu6_tiny_output_scale", lambda: fc().opt(fusedActivationFunction=3).t("y", scale=[1e-9]), "exceeds 0.02"),
    ("fc_bias_size", lambda: fc().t("b", shape=(7,), data=_b(7)), "bias has 7 values"),
    ("fc_filter_rank", lambda: fc().t("w", shape=(6, 4, 2), data=_w((6, 4, 2))), "weights must be 2-D"),
    ("fc_shuffled_weights", lambda: fc().opt(weightsFormat=1), "shuffled"),
    # ADD / MUL (add.cc, mul.cc Prepare)
    ("add_shapes_do_not_broadcast", lambda: binary("ADD").t("b", shape=(1, 4, 4, 3)), "do not broadcast"),
    ("add_input_types", lambda: binary("ADD").t("b", dtype="int16"), "is int16"),
    ("mul_shapes_do_not_broadcast", lambda: binary("MUL").t("b", shape=(1, 4, 4, 3)), "do not broadcast"),
    ("mul_relu6_bound_overflows_int32", lambda: binary("MUL").opt(fusedActivationFunction=3).t("y", scale=[1e-9]),
     "overflows int32"),
    # pooling (pooling.cc GenericPrepare)
    ("avg_pool_stride_h_0", lambda: pool("AVERAGE_POOL_2D").opt(strideH=0), "stride_h 0 out of range"),
    ("max_pool_stride_w_0", lambda: pool("MAX_POOL_2D").opt(strideW=0), "stride_w 0 out of range"),
    ("avg_pool_stride_negative", lambda: pool("AVERAGE_POOL_2D").opt(strideH=-1), "stride_h -1 out of range"),
    ("max_pool_input_rank", lambda: pool("MAX_POOL_2D").t("x", shape=(6, 6, 4)), "4-D"),
    ("max_pool_output_type", lambda: pool("MAX_POOL_2D").t("y", dtype="int16"), "is int16"),
    # SOFTMAX, LOGISTIC, HARD_SWISH (activations.cc)
    ("softmax_output_zero_point", lambda: softmax().t("y", zero_point=[0]), "zero point 0 must be -128"),
    ("softmax_output_scale", lambda: softmax().t("y", scale=[1 / 128]), "must be 1/256"),
    ("softmax_output_scale_off_by_0.2%", lambda: softmax().t("y", scale=[1 / 256 * 1.002]), "must be 1/256"),
    ("softmax_scalar_input", lambda: softmax().t("x", shape=()).t("y", shape=()), "rank >= 1"),
    ("logistic_output_scale", lambda: unary("LOGISTIC", so=1 / 128), "exactly 1/256"),
    ("logistic_output_scale_near", lambda: unary("LOGISTIC", so=1 / 256 * 1.0005), "exactly 1/256"),
    ("logistic_output_type", lambda: unary("LOGISTIC").t("y", dtype="int16"), "is int16"),
    ("hard_swish_tiny_output_scale", lambda: unary("HARD_SWISH", so=1e-12, zo=3), "interpreter refuses"),
    ("hard_swish_huge_input_scale", lambda: unary("HARD_SWISH", so=0.05, zo=3).t("x", scale=[1e30]),
     "interpreter refuses"),
    ("hard_swish_output_type", lambda: unary("HARD_SWISH", so=0.05).t("y", dtype="int16"), "is int16"),
    # MEAN (reduce.cc PrepareSimple, ResolveAxisForShape)
    ("mean_axes_int64", lambda: mean().t("a", dtype="int64"), "int32 expected"),
    ("mean_axis_too_large", lambda: mean().t("a", shape=(1,), data=np.array([5], np.int32)), "out of range"),
    ("mean_axis_too_small", lambda: mean().t("a", shape=(1,), data=np.array([-5], np.int32)), "out of range"),
    # PAD / PADV2 (pad.cc)
    ("pad_negative", lambda: pad().t("p", data=np.array([[0, 0], [-1, 1], [0, 2], [0, 0]], np.int32))
     .t("y", shape=(1, 3, 5, 2)), "negative"),
    ("pad_rows_vs_rank", lambda: pad().t("p", shape=(3, 2), data=np.array([[0, 0], [1, 1], [0, 2]], np.int32)),
     r"\[4, 2\] expected"),
    ("pad_columns", lambda: pad().t("p", shape=(4, 3), data=np.zeros((4, 3), np.int32)), r"\[4, 2\] expected"),
    ("pad_float_paddings", lambda: pad().t("p", dtype="float32"), "integer tensor"),
    ("pad_rank_6", pad_rank6, "rank 6 > 5"),
    ("pad_output_type", lambda: pad().t("y", dtype="int16"), "differ in type"),
    ("padv2_value_type", lambda: pad(True).t("v", dtype="int16", data=np.array([5])), "one int8 value"),
    ("padv2_value_count", lambda: pad(True).t("v", shape=(2,), data=np.array([5, 6])), "one int8 value"),
    # CONCATENATION (concatenation.cc Prepare)
    ("concat_axis_too_large", lambda: concat().opt(axis=3), "axis 3 out of range"),
    ("concat_axis_too_small", lambda: concat().opt(axis=-4), "axis -4 out of range"),
    ("concat_off_axis_size", lambda: concat().t("b", shape=(1, 4, 2)), "off axis"),
    ("concat_rank", lambda: concat().t("b", shape=(4, 3)), "off axis"),
    ("concat_scale", lambda: concat().t("b", scale=[0.06]), "quantization"),
    ("concat_zero_point", lambda: concat().t("b", zero_point=[2]), "quantization"),
    ("concat_type", lambda: concat().t("b", dtype="int16"), "differ in type"),
    ("concat_fused_activation", lambda: concat().opt(fusedActivationFunction=1), "fused activation"),
    # RESHAPE, SQUEEZE, EXPAND_DIMS (reshape.cc, squeeze.cc, expand_dims.cc)
    ("reshape_count", lambda: reshape(shape=(5, -1)), "cannot reshape 12 elements"),
    ("reshape_two_stretch", lambda: reshape(shape=(-1, -1)), "more than one -1"),
    ("reshape_int64_shape_no_options", lambda: reshape().t("s", dtype="int64"), "cannot reshape 12 elements"),
    ("reshape_no_shape", lambda: reshape().drop_input(1), "cannot reshape 12 elements"),
    ("squeeze_two_inputs", lambda: reshape("SQUEEZE"), "takes 1"),
    ("squeeze_dim_not_1", lambda: squeeze([1]), "not of size 1"),
    ("squeeze_dim_out_of_range", lambda: squeeze([7]), "out of range"),
    ("expand_dims_axis_count", lambda: reshape("EXPAND_DIMS"), "one int32/int64 value"),
    ("expand_dims_axis_range", lambda: expand_dims(5), "axis 5 out of range"),
    ("expand_dims_axis_type", lambda: expand_dims(1, "int16"), "one int32/int64 value"),
    # STRIDED_SLICE (strided_slice.cc Prepare)
    ("slice_stride_0", lambda: sslice().t("s", data=np.array([1, 0, 1], np.int32)), "do not fit"),
    ("slice_begin_count", lambda: sslice().t("b", shape=(4,), data=np.array([0, 1, 0, 0], np.int32)), "do not fit"),
    ("slice_begin_int64", lambda: sslice().t("b", dtype="int64"), "begin is int64"),
    ("slice_end_int64", lambda: sslice().t("e", dtype="int64"), "end is int64"),
    ("slice_strides_int64", lambda: sslice().t("s", dtype="int64"), "strides is int64"),
    ("slice_output_type", lambda: sslice().t("y", dtype="int16"), "differ in type"),
]

# The interpreter prepares these (it resizes the output to the shape it computes, so the model's declared
# output is not what it returns); native refuses them with an error instead of a traceback.
DECLARED_SHAPE_IGNORED: list[tuple[str, Callable[[], Spec], str]] = [
    ("logistic_output_count", lambda: unary("LOGISTIC").t("y", shape=(1, 21)), "differs from the input"),
    ("quantize_output_count", lambda: quantize().t("y", shape=(1, 11)), "differs from the input"),
    ("requantize_output_count", lambda: requantize().t("y", shape=(2, 10)), "differs from the input"),
    ("dequantize_output_count", lambda: dequantize().t("y", shape=(1, 11)), "differs from the input"),
]

# ADD's QuantizeMultiplierSmallerThanOneExp is a TFLITE_CHECK: the interpreter aborts the process.
ABORTS: list[tuple[str, Callable[[], Spec], str]] = [
    ("add_output_multiplier_above_1", lambda: binary("ADD").t("y", scale=[1e-12]), "output multiplier"),
    ("add_huge_input_scale", lambda: binary("ADD").t("a", scale=[1e30]), "output multiplier"),
    ("add_relu6_tiny_output_scale", lambda: binary("ADD").opt(fusedActivationFunction=3).t("y", scale=[1e-9]),
     "output multiplier"),
]

_INTERP = """
import sys
from edge_maas.backends.litert import interpreter_module
mod, _ = interpreter_module()
it = mod.Interpreter(model_content=open(sys.argv[1], "rb").read(),
                     experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
it.allocate_tensors()
print("prepared")
"""


def _interpreter(model: bytes):
    mod, _ = interpreter_module()
    return mod.Interpreter(
        model_content=model, experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )


def _feed(model: bytes) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    feed = {}
    for spec in NativeBackend(model).inputs:
        if spec.dtype == "float32":
            feed[spec.name] = rng.standard_normal(spec.shape).astype(np.float32)
        else:
            feed[spec.name] = int8_input(rng, spec.shape)
    return feed


@pytest.mark.parametrize("name", list(BASELINES))
def test_unbroken_model_runs_on_both_with_identical_bytes(name):
    if name == "dequantize":
        skip_unless_litert_semantics("its DEQUANTIZE is 1 float32 ulp off ai-edge-litert's at some values")
    model = BASELINES[name]().build()
    # aarch64 (tests/arm.py): its DEQUANTIZE blocks fuse q*s - zp*s (scale 0.05, zp 1 above); conv / FC round once
    arm = (lambda feed: {"y": dequantize_aarch64(feed["x"], 0.05, 1).reshape(1, 10)}) if name == "dequantize" else (
        ONE_LSB if {"conv", "fc", "softmax", "hard_swish"} & {name, name.split("_per_")[0]} else None)
    native_matches_interpreter(model, [_feed(model)], arm=arm)


@pytest.mark.parametrize("make,match", [pytest.param(m, s, id=i) for i, m, s in CASES])
def test_native_refuses_what_the_interpreter_refuses_at_prepare(make, match):
    model = make().build()
    it = _interpreter(model)  # the model itself is well formed: only prepare refuses it
    try:
        it.allocate_tensors()
        refused = None
    except RuntimeError as exc:
        refused = str(exc)
    # (the model loader may refuse an op's input count first: it names the operator too)
    with pytest.raises(EdgeMaasError, match=rf"op(erator)? 0 \([A-Z_0-9]+\)[: ].*{match}"):
        NativeBackend(model)
    if refused is None and INTERPRETER != "ai-edge-litert":  # native still refuses it, asserted above
        pytest.skip("tflite-runtime 2.14 prepares this model; ai-edge-litert's prepare refuses it (native too)")
    assert refused is not None and "failed to prepare" in refused, f"the interpreter prepared this model: {refused}"


@pytest.mark.parametrize("make,match", [pytest.param(m, s, id=i) for i, m, s in DECLARED_SHAPE_IGNORED])
def test_declared_output_shape_the_interpreter_would_replace_is_refused(make, match):
    model = make().build()
    it = _interpreter(model)
    it.allocate_tensors()
    declared = next(t for t in make().tensors.values() if t.name == "y").shape
    assert tuple(it.get_output_details()[0]["shape"]) != tuple(declared)
    with pytest.raises(EdgeMaasError, match=rf"op 0 \([A-Z_0-9]+\): .*{match}"):
        NativeBackend(model)


@pytest.mark.parametrize("make,match", [pytest.param(m, s, id=i) for i, m, s in ABORTS])
def test_native_refuses_what_aborts_the_interpreter(make, match, tmp_path):
    model = make().build()
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    proc = subprocess.run([sys.executable, "-c", _INTERP, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "prepared" not in proc.stdout, "the interpreter prepared this model"
    with pytest.raises(EdgeMaasError, match=rf"op 0 \(ADD\): .*{match}"):
        NativeBackend(model)
