"""A read-only graph view of a single-subgraph TFLite model.

Tensor names are made unique here (TFLite does not promise unique names) so
that everything downstream can address tensors by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edge_maas.errors import ModelFormatError
from edge_maas.tflite.schema import NUMPY_DTYPES, OP_NAMES, TYPE_NAMES, schema

_FILE_IDENTIFIER = b"TFL3"
# Ops whose semantics need other subgraphs or persistent state: a shard cannot
# hold them on its own, so models using them are refused rather than cut wrongly.
_STATEFUL_OPS = frozenset(
    {"CALL_ONCE", "WHILE", "IF", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL", "STABLEHLO_COMPOSITE"}
)


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
    """Parse a .tflite file (path or bytes); raise ModelFormatError on anything unreadable."""
    data = source if isinstance(source, (bytes, bytearray)) else _read(Path(source))
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise ModelFormatError("not a TFLite model: the flatbuffer file identifier 'TFL3' is missing")
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
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
    if len(subgraphs) != 1:
        raise ModelFormatError(
            f"model has {len(subgraphs)} subgraphs; only single-subgraph models "
            "(no CALL_ONCE/WHILE/IF control flow) can be split"
        )
    sg = subgraphs[0]
    codes = model.operatorCodes or []
    buffers = model.buffers or []
    tensors = [_tensor_info(i, t, buffers) for i, t in enumerate(sg.tensors or [])]
    if any(t.isVariable for t in sg.tensors or []):
        raise ModelFormatError("model has variable (stateful) tensors; such models cannot be split")
    tensors = _uniquify_names(tensors)
    ops = []
    for i, op in enumerate(sg.operators or []):
        if op.opcodeIndex >= len(codes):
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
        for t in ins + outs:
            if t >= len(tensors) or t < -1:
                raise ModelFormatError(f"operator {i} ({name}) refers to tensor {t}, which does not exist")
        ops.append(OpInfo(i, name, ins, outs, op.builtinOptions))
    return Graph(
        model=model,
        tensors=tensors,
        ops=ops,
        inputs=tuple(int(x) for x in (sg.inputs if sg.inputs is not None else ())),
        outputs=tuple(int(x) for x in (sg.outputs if sg.outputs is not None else ())),
        size_bytes=size_bytes,
    )


def _tensor_info(index: int, t, buffers) -> TensorInfo:
    type_name = TYPE_NAMES.get(t.type, str(t.type))
    dtype = NUMPY_DTYPES.get(type_name)
    if dtype is None:
        raise ModelFormatError(f"tensor {index} has type {type_name}, which edge_maas does not handle")
    data = buffers[t.buffer].data if 0 < t.buffer < len(buffers) else None
    nbytes = 0 if data is None else len(data)
    q = t.quantization
    quant = None
    if q is not None and q.scale is not None and len(q.scale) > 0:
        quant = QuantParams(
            scale=tuple(float(s) for s in q.scale),
            zero_point=tuple(int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [0] * len(q.scale))),
            axis=int(q.quantizedDimension),
        )
    name = (t.name or b"").decode("utf-8", errors="replace") or f"tensor_{index}"
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    return TensorInfo(index, name, shape, dtype, quant, int(t.buffer), nbytes > 0, nbytes)


def _uniquify_names(tensors: list[TensorInfo]) -> list[TensorInfo]:
    seen: dict[str, int] = {}
    for t in tensors:
        seen[t.name] = seen.get(t.name, 0) + 1
    return [
        t if seen[t.name] == 1 else TensorInfo(**{**t.__dict__, "name": f"{t.name}#{t.index}"}) for t in tensors
    ]
