"""Build small TFLite models from scratch (one op or a short chain).

Used by tests to check kernels against the interpreter on one op at a time,
as tflite-micro tests each kernel in isolation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_maas.tflite.schema import schema
from edge_maas.tflite.writer import pack_model

_TYPES = {
    "float32": schema.TensorType.FLOAT32,
    "int8": schema.TensorType.INT8,
    "uint8": schema.TensorType.UINT8,
    "int16": schema.TensorType.INT16,
    "int32": schema.TensorType.INT32,
    "int64": schema.TensorType.INT64,
}


@dataclass
class T:
    """A tensor to build: activations have data None; constants carry their array."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: Sequence[float] = ()
    zero_point: Sequence[int] = ()
    axis: int = 0
    data: np.ndarray | None = None


@dataclass
class Op:
    op: str  # builtin name, e.g. "QUANTIZE"
    inputs: Sequence[str]
    outputs: Sequence[str]
    options_type: str | None = None  # e.g. "FullyConnectedOptions"
    options: dict[str, Any] = field(default_factory=dict)


def build_model(tensors: Sequence[T], ops: Sequence[Op], inputs: Sequence[str], outputs: Sequence[str],
                signature: str | None = None) -> bytes:  # fmt: skip
    """A one-subgraph .tflite; ``signature`` (e.g. serving_default) adds a SignatureDef naming the inputs and
    outputs by their tensor names, as TensorFlow's converter writes one."""
    index = {t.name: i for i, t in enumerate(tensors)}
    buffers = [schema.BufferT()]
    tts = []
    for t in tensors:
        tt = schema.TensorT(shape=list(t.shape), type=_TYPES[t.dtype], name=t.name.encode())
        if t.scale:
            q = schema.QuantizationParametersT()
            q.scale = [float(s) for s in t.scale]
            q.zeroPoint = [int(z) for z in (t.zero_point or [0] * len(t.scale))]
            q.quantizedDimension = t.axis
            tt.quantization = q
        if t.data is not None:
            arr = np.ascontiguousarray(np.asarray(t.data, dtype=t.dtype))
            buffers.append(schema.BufferT(data=np.frombuffer(arr.tobytes(), dtype=np.uint8)))
            tt.buffer = len(buffers) - 1
        tts.append(tt)
    codes: list[int] = []
    ots = []
    for op in ops:
        code = getattr(schema.BuiltinOperator, op.op)
        if code not in codes:
            codes.append(code)
        o = schema.OperatorT(
            opcodeIndex=codes.index(code),
            inputs=[index[n] if n else -1 for n in op.inputs],
            outputs=[index[n] for n in op.outputs],
        )
        if op.options_type:
            opts = getattr(schema, f"{op.options_type}T")()
            for k, v in op.options.items():
                setattr(opts, k, v)
            o.builtinOptionsType = getattr(schema.BuiltinOptions, op.options_type)
            o.builtinOptions = opts
        ots.append(o)
    opcodes = [schema.OperatorCodeT(deprecatedBuiltinCode=min(c, 127), builtinCode=c, version=1) for c in codes]
    sig = None
    if signature is not None:
        tmap = lambda names: [schema.TensorMapT(name=n.encode(), tensorIndex=index[n]) for n in names]
        sig = schema.SignatureDefT(inputs=tmap(inputs), outputs=tmap(outputs), signatureKey=signature.encode(),
                                   subgraphIndex=0)  # fmt: skip
    return pack_model(
        tts, ots, [index[n] for n in inputs], [index[n] for n in outputs], opcodes, buffers, "edge_maas builder",
        signature_defs=[sig] if sig else None,
    )
