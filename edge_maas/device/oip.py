"""The Open Inference Protocol (KServe v2) in numpy terms, for the device's HTTP API (edge_maas.device.http_api).

What a device serves, as the protocol's models (docs/http_api.md):
- a split model ``NAME``: its inputs and outputs under their own names;
- a service ``NAME``: every task, outputs keyed ``TASK/TENSOR`` (as over MQTT); the ``outputs`` of a request
  select the tasks to run, each submodel they need once (a shared backbone runs once);
- each task of a service as ``NAME.TASK``: its outputs under their own tensor names.

Requests: JSON tensors (``data`` flat in row-major order, or nested) and the binary tensor data extension
(``Inference-Header-Content-Length``; ``binary_data_size`` on inputs; ``binary_data`` on requested outputs and
``binary_data_output`` on the request).  Every refusal is a ProtocolError carrying its HTTP status.  No web framework
here: this module needs only numpy and pydantic."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_maas.errors import EdgeMaasError
from edge_maas.manifest import TensorDesc
from edge_maas.service import ServiceManifest, flatten_outputs

#: numpy dtype name -> the protocol's datatype (KServe/Triton names)
DATATYPES = {"bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "int8": "INT8",
             "int16": "INT16", "int32": "INT32", "int64": "INT64", "float16": "FP16", "float32": "FP32",
             "float64": "FP64"}  # fmt: skip
HEADER = "Inference-Header-Content-Length"  # bytes of JSON at the start of a body; binary tensor data follows
EXTENSIONS = ("binary_tensor_data",)
PLATFORM = "tflite"


class HttpApiError(EdgeMaasError):
    """The HTTP API cannot start: its packages are not installed, or its address cannot be bound."""


class ProtocolError(EdgeMaasError):
    """A request the protocol refuses; ``status`` is the HTTP status to answer with (body ``{"error": message}``)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the protocol lets clients add fields servers do not know


class RequestInput(_Lenient):
    name: str = Field(min_length=1)
    shape: list[int] = Field(max_length=16)
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestOutput(_Lenient):
    name: str = Field(min_length=1)
    parameters: dict[str, Any] | None = None


class InferenceRequest(_Lenient):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


@dataclass(frozen=True)
class ModelView:
    """One model name the device answers to, over the version running now (``active``, edge_maas.device.agent)."""

    name: str
    active: Any  # edge_maas.device.agent.Active (not imported: this module stays light)
    task: str | None  # a service's task served alone (NAME.TASK); None: the split model, or the whole service
    inputs: tuple[TensorDesc, ...]
    outputs: dict[str, TensorDesc]  # output name as this model shows it -> its description

    @property
    def version(self) -> str:
        return self.active.version

    def metadata(self) -> dict:
        """The protocol's model metadata response."""
        return {"name": self.name, "versions": [self.version], "platform": PLATFORM,
                "inputs": [_meta(t.name, t) for t in self.inputs],
                "outputs": [_meta(n, t) for n, t in self.outputs.items()]}  # fmt: skip

    def tasks(self, outputs: Iterable[str]) -> tuple[str, ...]:
        """The ``tasks`` argument of agent.infer that computes ``outputs`` (names this model shows)."""
        if not isinstance(self.active.manifest, ServiceManifest):
            return ()
        if self.task is not None:
            return (self.task,)
        wanted = {o.split("/", 1)[0] for o in outputs}
        return tuple(t.name for t in self.active.manifest.tasks if t.name in wanted)  # the manifest's order

    def rename(self, result: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """agent.infer's outputs (keyed TASK/TENSOR for a service) under the names this model shows."""
        if self.task is None:
            return dict(result)
        return {o: result[_key(self.task, o)] for o in self.outputs}


def views(active) -> dict[str, ModelView]:
    """Every model name the running version answers to (module docstring), by name."""
    m = active.manifest
    if not isinstance(m, ServiceManifest):
        return {m.name: ModelView(m.name, active, None, m.inputs, {t.name: t for t in m.outputs})}
    # the whole service: its outputs named as agent.infer names them for several tasks (TASK/TENSOR)
    flat = {_key(t.name, o): m.tensor(o) for t in m.tasks for o in t.outputs}
    out = {m.name: ModelView(m.name, active, None, m.inputs, flat)}
    for t in m.tasks:
        needed = {x.name for s in m.task_plan([t.name]) for x in s.inputs}
        inputs = tuple(x for x in m.inputs if x.name in needed)
        out[f"{m.name}.{t.name}"] = ModelView(f"{m.name}.{t.name}", active, t.name, inputs,
                                              {o: m.tensor(o) for o in t.outputs})  # fmt: skip
    return out


def _key(task: str, tensor: str) -> str:
    """The name agent.infer gives a task's output tensor when it answers several tasks (TASK/TENSOR)."""
    (key,) = flatten_outputs({task: {tensor: None}})
    return key


def _meta(name: str, t: TensorDesc) -> dict:
    return {"name": name, "datatype": DATATYPES[t.dtype], "shape": list(t.shape)}


# -- requests ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decoded:
    request: InferenceRequest
    inputs: dict[str, np.ndarray]
    outputs: tuple[tuple[str, bool], ...]  # (output name, as binary data), in the order to answer


def decode(body: bytes, header_length: str | None, view: ModelView) -> Decoded:
    """An inference request for ``view``: the JSON object (the first ``header_length`` bytes of the body when the
    binary extension is used, else all of it), then each binary input's bytes in the order of ``inputs``.
    ProtocolError(400) for anything malformed or not matching the model's inputs and outputs."""
    split = len(body)
    if header_length is not None:
        try:
            split = int(header_length)
        except ValueError:
            split = -1
        if not 0 <= split <= len(body):
            raise ProtocolError(400, f"{HEADER} is {header_length!r}; the body has {len(body)} bytes")
    try:
        doc = json.loads(body[:split])
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolError(400, f"malformed JSON in the inference request: {exc}") from None
    try:
        req = InferenceRequest.model_validate(doc)
    except ValidationError as exc:
        raise ProtocolError(400, f"invalid inference request: {_summary(exc)}") from None
    binary = memoryview(body)[split:]
    inputs: dict[str, np.ndarray] = {}
    known = {t.name: t for t in view.inputs}
    offset = 0
    for x in req.inputs:
        desc = known.get(x.name)
        if desc is None:
            raise ProtocolError(400, f"model {view.name} has no input {x.name!r}; its inputs: {', '.join(known)}")
        if x.name in inputs:
            raise ProtocolError(400, f"input {x.name!r} is given more than once")
        if x.datatype != DATATYPES[desc.dtype]:
            raise ProtocolError(400, f"input {x.name!r} has datatype {x.datatype}; model {view.name} takes "
                                     f"{DATATYPES[desc.dtype]}")  # fmt: skip
        if tuple(x.shape) != desc.shape:
            raise ProtocolError(400, f"input {x.name!r} has shape {x.shape}; model {view.name} takes "
                                     f"{list(desc.shape)}")  # fmt: skip
        size = (x.parameters or {}).get("binary_data_size")
        if size is None:
            inputs[x.name] = _from_json(x, np.dtype(desc.dtype))
            continue
        dt = np.dtype(desc.dtype).newbyteorder("<")  # the extension's byte order
        need = math.prod(desc.shape) * dt.itemsize
        if type(size) is not int or size != need:
            raise ProtocolError(400, f"input {x.name!r}: binary_data_size is {size!r}; {x.datatype}{x.shape} is "
                                     f"{need} bytes")  # fmt: skip
        if offset + size > len(binary):
            raise ProtocolError(400, f"input {x.name!r} needs {size} bytes of binary data; the body has "
                                     f"{len(binary) - offset} left")  # fmt: skip
        chunk = binary[offset : offset + size]
        inputs[x.name] = np.frombuffer(chunk, dt).reshape(desc.shape).astype(dt.newbyteorder("="))
        offset += size
    if offset != len(binary):
        raise ProtocolError(400, f"the body has {len(binary) - offset} bytes of binary data beyond its inputs")
    every = (req.parameters or {}).get("binary_data_output", False) is True
    if req.outputs is None:
        outputs = tuple((n, every) for n in view.outputs)
    else:
        unknown = [o.name for o in req.outputs if o.name not in view.outputs]
        if unknown:
            raise ProtocolError(400, f"model {view.name} has no output {', '.join(map(repr, unknown))}; its outputs: "
                                     f"{', '.join(view.outputs)}")  # fmt: skip
        outputs = tuple(dict.fromkeys((o.name, (o.parameters or {}).get("binary_data", every) is True)
                                      for o in req.outputs))  # fmt: skip
        if len({n for n, _ in outputs}) != len(outputs):
            raise ProtocolError(400, "an output is requested twice, once as binary data and once as JSON")
    if not outputs:
        raise ProtocolError(400, "no output requested")
    return Decoded(req, inputs, outputs)


def _from_json(x: RequestInput, dt: np.dtype) -> np.ndarray:
    """A JSON tensor's ``data`` (flat row-major or nested lists) as an array of ``dt`` and the given shape; values
    a ``dt`` cannot hold exactly (fractions or out of range for an integer type, numbers for BOOL) are refused."""
    if x.data is None:
        raise ProtocolError(400, f"input {x.name!r} has neither data nor the binary_data_size parameter")
    try:
        arr = np.asarray(x.data)
    except (ValueError, TypeError):  # ragged lists
        raise ProtocolError(400, f"input {x.name!r}: data is not a regular array of numbers") from None
    n = math.prod(x.shape)
    if arr.size != n or (arr.size and arr.dtype.kind not in "biuf"):
        what = f"{arr.size} values" if arr.dtype.kind in "biuf" or not arr.size else f"{arr.dtype.kind!r}-kind data"
        raise ProtocolError(400, f"input {x.name!r}: data has {what}; {x.datatype}{x.shape} needs {n} numbers")
    if (dt.kind == "b") != (arr.dtype.kind == "b") and arr.size:
        raise ProtocolError(400, f"input {x.name!r}: BOOL data must be true/false, and only BOOL data may be")
    if dt.kind in "iu" and arr.size:
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise ProtocolError(400, f"input {x.name!r}: {x.datatype} data must be integers")
        info = np.iinfo(dt)
        if arr.min() < info.min or arr.max() > info.max:
            raise ProtocolError(400, f"input {x.name!r}: values must lie in {info.min}..{info.max} for {x.datatype}")
    return arr.astype(dt).reshape(x.shape)


def _summary(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


# -- responses ---------------------------------------------------------------------------------------------------
def encode(view: ModelView, decoded: Decoded, result: Mapping[str, np.ndarray]) -> tuple[bytes, int | None]:
    """The inference response body, and the length of its JSON part when binary outputs follow it (the value of
    the Inference-Header-Content-Length header; None: the body is JSON only)."""
    outs, parts = [], []
    for name, binary in decoded.outputs:
        a = np.ascontiguousarray(result[name])
        entry: dict[str, Any] = {"name": name, "datatype": DATATYPES[a.dtype.name], "shape": list(a.shape)}
        if binary:
            data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            parts.append(data)
        else:
            entry["data"] = a.ravel().tolist()
        outs.append(entry)
    doc: dict[str, Any] = {"model_name": view.name, "model_version": view.version, "outputs": outs}
    if decoded.request.id is not None:
        doc["id"] = decoded.request.id
    head = json.dumps(doc, separators=(",", ":")).encode()
    return (head + b"".join(parts), len(head)) if parts else (head, None)
