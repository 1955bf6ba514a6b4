"""One module per op; each exposes lower(ctx) -> Lowered."""

from __future__ import annotations

import importlib

from edge_maas.errors import UnsupportedOpError

# op name -> "module" (its lower()) or "module:function" in this package
_MODULES = {
    "ADD": "add",
    "ARG_MAX": "arg_min_max",
    "ARG_MIN": "arg_min_max",
    "AVERAGE_POOL_2D": "pooling:lower_average",
    "BATCH_MATMUL": "batch_matmul",
    "CONCATENATION": "movement:lower_concatenation",
    "CONV_2D": "conv",
    "DEPTH_TO_SPACE": "depth_space:lower_depth_to_space",
    "DEPTHWISE_CONV_2D": "depthwise_conv",
    "DEQUANTIZE": "quantize:lower_dequantize",
    "ELU": "elu",
    "EXP": "exp",
    "EXPAND_DIMS": "movement:lower_reshape",
    "FULLY_CONNECTED": "fully_connected",
    "GATHER": "gather",
    "GELU": "gelu",
    "HARD_SWISH": "activations:lower_hard_swish",
    "LEAKY_RELU": "relu:lower_leaky_relu",
    "LOG_SOFTMAX": "log_softmax",
    "LOGISTIC": "activations:lower_logistic",
    "MAX_POOL_2D": "pooling:lower_max",
    "MAXIMUM": "minmax",
    "MEAN": "mean",
    "MINIMUM": "minmax",
    "MUL": "mul",
    "PACK": "pack:lower_pack",
    "PAD": "movement:lower_pad",
    "PADV2": "movement:lower_pad",
    "PRELU": "prelu",
    "QUANTIZE": "quantize:lower_quantize",
    "REDUCE_MAX": "reduce_max",
    "REDUCE_MIN": "reduce_max",
    "RELU": "relu:lower_relu",
    "RELU6": "relu:lower_relu",
    "RELU_0_TO_1": "relu:lower_relu",
    "RELU_N1_TO_1": "relu:lower_relu",
    "RESHAPE": "movement:lower_reshape",
    "RESIZE_BILINEAR": "resize_bilinear",
    "RESIZE_NEAREST_NEIGHBOR": "resize_nearest",
    "SLICE": "split:lower_slice",
    "SOFTMAX": "softmax",
    "SPACE_TO_DEPTH": "depth_space:lower_space_to_depth",
    "SPLIT": "split:lower_split",
    "SPLIT_V": "split:lower_split_v",
    "SQUARED_DIFFERENCE": "squared_difference",
    "SQUEEZE": "movement:lower_reshape",
    "STRIDED_SLICE": "movement:lower_strided_slice",
    "SUB": "add:lower_sub",
    "SUM": "reduce_sum",
    "TANH": "tanh",
    "TRANSPOSE": "transpose",
    "UNPACK": "pack:lower_unpack",
}


def supported() -> list[str]:
    return sorted(_MODULES)


def lowering(op: str):
    """The lower() function for an op name; UnsupportedOpError (naming the op) if there is none."""
    mod = _MODULES.get(op)
    if mod is None:
        raise UnsupportedOpError(
            f"the native executor has no kernel for {op}; supported ops: {', '.join(supported())}. "
            "Run this model (or this shard) on the 'litert' backend"
        )
    module, _, fn = mod.partition(":")
    return getattr(importlib.import_module(f"edge_maas.native.ops.{module}"), fn or "lower")
