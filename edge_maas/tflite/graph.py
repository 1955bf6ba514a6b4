"""A read-only graph view of a single-subgraph TFLite model.

Tensor names are made unique here (TFLite does not promise unique names) so
that everything downstream can address tensors by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edge_maas.errors import ModelFormatError
from edge_maas.tflite.schema import NUMPY_DTYPES, OP_NAMES, TYPE_NAMES, schema
from edge_maas.tflite.verify import MAX_RANK, MAX_TENSOR_ELEMENTS, MAX_TOTAL_TENSOR_BYTES, check_flatbuffer

_FILE_IDENTIFIER = b"TFL3"
# Ops whose semantics need other subgraphs or persistent state: a shard cannot
# hold them on its own, so models using them are refused rather than cut wrongly.
_STATEFUL_OPS = frozenset(
    {"CALL_ONCE", "WHILE", "IF", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL", "STABLEHLO_COMPOSITE"}
)

# Inputs (min, max; None: any number) and outputs each op takes, as the interpreter's kernels check at prepare.
# The first `min` inputs are required: -1 (omitted) is allowed only after them.  Ops not listed are not checked.
_BINARY = ("ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "POW", "FLOOR_DIV", "FLOOR_MOD",
           "LESS", "GREATER", "EQUAL", "NOT_EQUAL", "LESS_EQUAL", "GREATER_EQUAL", "PRELU")  # fmt: skip
_UNARY = ("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "HARD_SWISH", "ELU", "LEAKY_RELU",
          "ABS", "NEG", "SQRT", "RSQRT", "EXP", "LOG", "FLOOR", "CEIL", "ROUND", "SQUARE", "QUANTIZE", "DEQUANTIZE",
          "SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "SQUEEZE",
          "SPACE_TO_DEPTH", "DEPTH_TO_SPACE")  # fmt: skip
_ARITY: dict[str, tuple[int, int | None, int, int]] = {  # op -> (min inputs, max inputs, min outputs, max outputs)
    **{op: (2, 2, 1, 1) for op in _BINARY},
    **{op: (1, 1, 1, 1) for op in _UNARY},
    "CONV_2D": (2, 3, 1, 1), "DEPTHWISE_CONV_2D": (2, 3, 1, 1), "FULLY_CONNECTED": (2, 3, 1, 2),
    "TRANSPOSE_CONV": (3, 4, 1, 1), "RESHAPE": (1, 2, 1, 1), "CONCATENATION": (1, None, 1, 1),
    "PAD": (2, 2, 1, 1), "PADV2": (2, 3, 1, 1), "MEAN": (2, 2, 1, 1), "SUM": (2, 2, 1, 1),
    "REDUCE_MAX": (2, 2, 1, 1), "REDUCE_MIN": (2, 2, 1, 1), "STRIDED_SLICE": (4, 4, 1, 1), "SLICE": (3, 3, 1, 1),
    "TRANSPOSE": (2, 2, 1, 1), "EXPAND_DIMS": (2, 2, 1, 1), "BATCH_MATMUL": (2, 2, 1, 1),
    "RESIZE_BILINEAR": (2, 2, 1, 1), "RESIZE_NEAREST_NEIGHBOR": (2, 2, 1, 1), "ARG_MAX": (2, 2, 1, 1),
    "ARG_MIN": (2, 2, 1, 1), "GATHER": (2, 2, 1, 1), "PACK": (1, None, 1, 1),
}  # fmt: skip


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per channel."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name, e.g. "int8"
    quant: QuantParams | None
    buffer: int
    is_constant: bool
    nbytes: int  # bytes of constant data (0 for activations)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def activation_bytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class OpInfo:
    index: int
    op: str  # builtin name, e.g. "CONV_2D"
    inputs: tuple[int, ...]  # -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: Any = field(repr=False, compare=False, default=None)  # builtin options object (schema *T)


@dataclass
class Graph:
    """Ops in execution order, tensors by index and by unique name."""

    model: Any  # schema.ModelT, kept for writing shards
    tensors: list[TensorInfo]
    ops: list[OpInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    size_bytes: int

    @cached_property
    def by_name(self) -> dict[str, TensorInfo]:
        return {t.name: t for t in self.tensors}

    @cached_property
    def producer(self) -> dict[int, int]:
        """tensor index -> index of the op that writes it."""
        return {t: op.index for op in self.ops for t in op.outputs}

    @cached_property
    def consumers(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for op in self.ops:
            for t in op.inputs:
                if t >= 0:
                    out.setdefault(t, []).append(op.index)
        return out

    def tensor(self, name: str) -> TensorInfo:
        try:
            return self.by_name[name]
        except KeyError:
            raise ModelFormatError(f"no tensor named {name!r} in the model") from None

    def constant(self, t: TensorInfo) -> np.ndarray:
        """The data of a constant tensor as a read-only array of its dtype and shape."""
        if not t.is_constant:
            raise ModelFormatError(f"tensor {t.name!r} has no constant data")
        raw = self.model.buffers[t.buffer].data
        dt = np.dtype(t.dtype).newbyteorder("<")
        if len(raw) != t.size * dt.itemsize:
            raise ModelFormatError(
                f"tensor {t.name!r}: buffer holds {len(raw)} bytes, shape {list(t.shape)} needs {t.size * dt.itemsize}"
            )
        arr = np.frombuffer(np.asarray(raw, dtype=np.uint8).tobytes(), dtype=dt).astype(t.dtype).reshape(t.shape)
        arr.flags.writeable = False
        return arr

    def constant_bytes(self, op_indices) -> int:
        """Bytes of distinct constant buffers that the given ops read."""
        bufs = {}
        for i in op_indices:
            for t in self.ops[i].inputs:
                if t >= 0 and self.tensors[t].is_constant:
                    bufs[self.tensors[t].buffer] = self.tensors[t].nbytes
        return sum(bufs.values())


def load_graph(source: bytes | str | Path) -> Graph:
    """Parse and validate a .tflite file (path or bytes); raise ModelFormatError on anything unreadable,
    inconsistent (indices, buffer sizes, quantization) or too large (see edge_maas.tflite.verify's limits)."""
    data = source if isinstance(source, (bytes, bytearray)) else _read(Path(source))
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise ModelFormatError("not a TFLite model: the flatbuffer file identifier 'TFL3' is missing")
    buf = bytearray(data)
    check_flatbuffer(buf)  # bounds what the object API below may build
    try:
        model = schema.ModelT.InitFromPackedBuf(buf, 0)
    except Exception as exc:  # the generated reader raises anything from struct.error to IndexError
        raise ModelFormatError(f"corrupt or truncated TFLite model ({type(exc).__name__}: {exc})") from None
    return _graph_from_model(model, len(data))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(f"cannot read model file {path}: {exc.strerror}") from None


def _graph_from_model(model, size_bytes: int) -> Graph:
    subgraphs = model.subgraphs or []
    if len(subgraphs) != 1 or subgraphs[0] is None:
        raise ModelFormatError(
            f"model has {len(subgraphs)} subgraphs; only single-subgraph models "
            "(no CALL_ONCE/WHILE/IF control flow) can be split"
        )
    sg = subgraphs[0]
    codes = model.operatorCodes or []
    buffers = model.buffers or []
    raw = sg.tensors or []
    if any(t is None for t in raw) or any(c is None for c in codes) or any(b is None for b in buffers):
        raise ModelFormatError("corrupt TFLite model: a tensor, operator code or buffer entry is missing")
    tensors = [_tensor_info(i, t, buffers) for i, t in enumerate(raw)]
    total = sum(t.activation_bytes for t in tensors)
    if total > MAX_TOTAL_TENSOR_BYTES:
        raise ModelFormatError(f"the model's tensors need {total} bytes together; edge_maas accepts at most "
                               f"{MAX_TOTAL_TENSOR_BYTES}")  # fmt: skip
    if any(t.isVariable for t in raw):
        raise ModelFormatError("model has variable (stateful) tensors; such models cannot be split")
    tensors = _uniquify_names(tensors)
    ops = [_op_info(i, op, codes, tensors) for i, op in enumerate(sg.operators or [])]
    graph = Graph(
        model=model,
        tensors=tensors,
        ops=ops,
        inputs=_io(sg.inputs, tensors, "input"),
        outputs=_io(sg.outputs, tensors, "output"),
        size_bytes=size_bytes,
    )
    _check_dataflow(graph)
    _check_computed_sizes(graph)
    return graph


def _op_info(i: int, op, codes, tensors: list[TensorInfo]) -> OpInfo:
    if op is None:
        raise ModelFormatError(f"corrupt TFLite model: operator {i} is missing")
    if not 0 <= op.opcodeIndex < len(codes):
        raise ModelFormatError(f"operator {i} refers to operator code {op.opcodeIndex}, which does not exist")
    code = codes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    name = OP_NAMES.get(builtin, f"UNKNOWN_{builtin}")
    if name == "CUSTOM":
        name = f"CUSTOM:{(code.customCode or b'').decode(errors='replace')}"
    if name in _STATEFUL_OPS:
        raise ModelFormatError(f"operator {i} is {name}; models with control flow or resource variables cannot be split")
    ins = tuple(int(x) for x in (op.inputs if op.inputs is not None else ()))
    outs = tuple(int(x) for x in (op.outputs if op.outputs is not None else ()))
    mids = tuple(int(x) for x in (op.intermediates if op.intermediates is not None else ()))
    for t in ins + outs + mids:
        if t >= len(tensors) or t < -1:
            raise ModelFormatError(f"operator {i} ({name}) refers to tensor {t}, which does not exist")
    if not outs or min(outs + mids) < 0:
        raise ModelFormatError(f"operator {i} ({name}) has a missing output tensor")
    if name in _ARITY:
        lo, hi, out_lo, out_hi = _ARITY[name]
        if len(ins) < lo or (hi is not None and len(ins) > hi) or min(ins[:lo], default=0) < 0:
            want = f"{lo}" if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
            raise ModelFormatError(f"operator {i} ({name}) has inputs {list(ins)}; it takes {want}, the first {lo} "
                                   "required")  # fmt: skip
        if not out_lo <= len(outs) <= out_hi:
            raise ModelFormatError(f"operator {i} ({name}) has {len(outs)} outputs; it makes {out_lo}"
                                   + (f" or {out_hi}" if out_hi != out_lo else ""))  # fmt: skip
    return OpInfo(i, name, ins, outs, op.builtinOptions)


def _io(seq, tensors: list[TensorInfo], what: str) -> tuple[int, ...]:
    idx = tuple(int(x) for x in (seq if seq is not None else ()))
    for t in idx:
        if not 0 <= t < len(tensors):
            raise ModelFormatError(f"model {what} refers to tensor {t}, which does not exist")
    if len(set(idx)) != len(idx):
        raise ModelFormatError(f"a tensor is listed twice as a model {what}")
    if what == "output" and not idx:
        raise ModelFormatError("the model has no outputs")
    return idx


def _check_dataflow(g: Graph) -> None:
    """Every activation an op reads is a model input or written by an earlier op; each is written once."""
    written = set(g.inputs)
    for t in g.inputs:
        if g.tensors[t].is_constant:
            raise ModelFormatError(f"model input {g.tensors[t].name!r} is a constant")
    for op in g.ops:
        for t in op.inputs:
            if t >= 0 and not g.tensors[t].is_constant and t not in written:
                raise ModelFormatError(
                    f"operator {op.index} ({op.op}) reads tensor {g.tensors[t].name!r} before any operator writes it"
                )
        for t in op.outputs:
            if t in written or g.tensors[t].is_constant:
                raise ModelFormatError(f"operator {op.index} ({op.op}) writes tensor {g.tensors[t].name!r}, which is "
                                       "a model input, a constant or written by an earlier operator")  # fmt: skip
            written.add(t)
    for t in g.outputs:
        if t not in written:
            raise ModelFormatError(f"model output {g.tensors[t].name!r} is written by no operator")


_SHAPE_KEEPING = frozenset(_UNARY) - {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "SQUEEZE", "SPACE_TO_DEPTH",
                                      "DEPTH_TO_SPACE"}  # fmt: skip


def _check_computed_sizes(g: Graph) -> None:
    """Bound the shapes the interpreter will compute, not only the stored ones: at prepare it recomputes each
    output's shape from its inputs (for the common ops below) and sizes its arena from those, so a mutated input
    dimension would inflate every later tensor past the limits checked on the stored shapes.  Shapes are
    propagated in execution order; a computed shape that differs from the stored one is not refused here (the
    backends refuse it, naming the op), only one over the limits."""
    shapes = {t.index: t.shape for t in g.tensors}
    for op in g.ops:
        want = _computed_shape(op, [shapes[t] if t >= 0 else None for t in op.inputs])
        if want is None or tuple(want) == shapes[op.outputs[0]]:
            continue
        n = math.prod(want)
        if n > MAX_TENSOR_ELEMENTS:
            raise ModelFormatError(f"operator {op.index} ({op.op}): its inputs make an output of shape {list(want)} "
                                   f"({n} elements); edge_maas accepts at most {MAX_TENSOR_ELEMENTS}")  # fmt: skip
        if min(want, default=1) >= 1:
            shapes[op.outputs[0]] = tuple(want)
    total = sum(math.prod(shapes[t.index]) * np.dtype(t.dtype).itemsize for t in g.tensors)
    if total > MAX_TOTAL_TENSOR_BYTES:
        raise ModelFormatError(f"the model's tensors need {total} bytes together at the shapes its inputs give; "
                               f"edge_maas accepts at most {MAX_TOTAL_TENSOR_BYTES}")  # fmt: skip


def _computed_shape(op: OpInfo, ins: list) -> tuple[int, ...] | None:
    """The output shape the interpreter computes from the input shapes, for the ops modelled here, else None."""
    if any(x is None for x in ins[:2]):
        return None
    if op.op in _SHAPE_KEEPING:
        return ins[0]
    if op.op in _BINARY and op.op != "PRELU":
        try:
            return tuple(np.broadcast_shapes(ins[0], ins[1]))
        except ValueError:
            return None
    if op.op == "FULLY_CONNECTED" and len(ins[1]) == 2 and ins[1][1] > 0 and math.prod(ins[0]) % ins[1][1] == 0:
        return (math.prod(ins[0]) // ins[1][1], ins[1][0])
    if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D") and len(ins[0]) == 4:
        return _conv_shape(op, ins[0], ins[1] if op.op.endswith("CONV_2D") else None)
    return None


def _conv_shape(op: OpInfo, x: tuple[int, ...], w: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """NHWC output shape of a conv/depthwise conv/pool as the interpreter computes it, or None to leave it to the
    backends (options or weights missing or of another kind)."""
    o = op.options
    need = ("padding", "strideH", "strideW") + (("filterHeight", "filterWidth") if w is None else ())
    if o is None or not all(hasattr(o, k) for k in need) or (w is not None and len(w) != 4):
        return None
    kh, kw = (w[1], w[2]) if w is not None else (o.filterHeight, o.filterWidth)
    sh, sw = int(o.strideH), int(o.strideW)
    dh, dw = int(getattr(o, "dilationHFactor", 1)), int(getattr(o, "dilationWFactor", 1))
    if min(sh, sw, dh, dw, kh, kw) < 1 or o.padding not in (schema.Padding.SAME, schema.Padding.VALID):
        return None  # both backends refuse these at prepare, naming the parameter

    def size(n: int, k: int, s: int, d: int) -> int:
        if o.padding == schema.Padding.SAME:
            return (n + s - 1) // s
        return (n - ((k - 1) * d + 1) + s) // s

    channels = x[3] if w is None else w[0] if op.op == "CONV_2D" else w[3]
    return (x[0], size(x[1], kh, sh, dh), size(x[2], kw, sw, dw), channels)


def _tensor_info(index: int, t, buffers) -> TensorInfo:
    type_name = TYPE_NAMES.get(t.type, str(t.type))
    dtype = NUMPY_DTYPES.get(type_name)
    if dtype is None:
        raise ModelFormatError(f"tensor {index} has type {type_name}, which edge_maas does not handle")
    name = (t.name or b"").decode("utf-8", errors="replace") or f"tensor_{index}"
    where = f"tensor {index} ({name[:64]!r})"
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    if len(shape) > MAX_RANK:
        raise ModelFormatError(f"{where} has rank {len(shape)}; edge_maas accepts at most {MAX_RANK}")
    if any(d < 1 for d in shape):
        raise ModelFormatError(f"{where} has shape {list(shape)}; every dimension must be at least 1")
    elements = math.prod(shape)  # Python ints: no wrap-around however large
    if elements > MAX_TENSOR_ELEMENTS:
        raise ModelFormatError(f"{where} has shape {list(shape)} ({elements} elements); edge_maas accepts at most "
                               f"{MAX_TENSOR_ELEMENTS} elements per tensor")  # fmt: skip
    if t.sparsity is not None:
        raise ModelFormatError(f"{where} is sparse; edge_maas handles dense tensors only")
    if getattr(t, "externalBuffer", 0):
        raise ModelFormatError(f"{where} keeps its data in an external buffer, which edge_maas does not handle")
    if not 0 <= t.buffer < max(len(buffers), 1):
        raise ModelFormatError(f"{where} refers to buffer {t.buffer}, which does not exist")
    buf = buffers[t.buffer] if t.buffer > 0 else None
    if buf is not None and (getattr(buf, "offset", 0) > 1 or getattr(buf, "size", 0) > 0):
        raise ModelFormatError(f"{where}: buffer {t.buffer} keeps its data outside the flatbuffer (offset/size), "
                               "which edge_maas does not handle")  # fmt: skip
    data = buf.data if buf is not None else None
    nbytes = 0 if data is None else len(data)
    need = elements * np.dtype(dtype).itemsize
    if nbytes and nbytes != need:
        raise ModelFormatError(f"{where}: buffer {t.buffer} holds {nbytes} bytes, shape {list(shape)} of {dtype} "
                               f"needs {need}")  # fmt: skip
    quant = _quant(t.quantization, shape, dtype, where)
    return TensorInfo(index, name, shape, dtype, quant, int(t.buffer), nbytes > 0, nbytes)


def _quant(q, shape: tuple[int, ...], dtype: str, where: str) -> QuantParams | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scale = tuple(float(s) for s in q.scale)
    zps = q.zeroPoint if q.zeroPoint is not None and len(q.zeroPoint) > 0 else [0] * len(scale)
    zero_point = tuple(int(z) for z in zps)
    axis = int(q.quantizedDimension)
    if len(zero_point) != len(scale):
        raise ModelFormatError(f"{where}: {len(scale)} quantization scales but {len(zero_point)} zero points")
    if len(scale) > 1 and not (0 <= axis < len(shape) and shape[axis] == len(scale)):
        raise ModelFormatError(f"{where}: {len(scale)} per-channel scales do not match quantized dimension {axis} "
                               f"of shape {list(shape)}")  # fmt: skip
    if not all(math.isfinite(s) and s > 0 for s in scale):
        raise ModelFormatError(f"{where}: quantization scales must be finite and positive")
    if dtype in ("int8", "uint8", "int16"):
        info = np.iinfo(dtype)
        if not all(info.min <= z <= info.max for z in zero_point):
            raise ModelFormatError(f"{where}: a zero point lies outside the {dtype} range")
    return QuantParams(scale=scale, zero_point=zero_point, axis=axis if len(scale) > 1 else max(axis, 0))


def _uniquify_names(tensors: list[TensorInfo]) -> list[TensorInfo]:
    seen: dict[str, int] = {}
    for t in tensors:
        seen[t.name] = seen.get(t.name, 0) + 1
    return [
        t if seen[t.name] == 1 else TensorInfo(**{**t.__dict__, "name": f"{t.name}#{t.index}"}) for t in tensors
    ]
