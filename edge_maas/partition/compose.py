"""Compose a service from whole models that share a prefix: one shared backbone submodel plus one head per model.

Two models share operator i when its operator code, options, quantization, constant bytes and where its inputs come
from (a model input, an earlier shared operator's output, a constant) are all the same; the longest run of shared
operators from the start of every model is the backbone.  Submodels are written canonically (tensors named by their
role: `input_K`, `backbone/out_K`, `TASK/out_K`, inside a submodel `SUB/N`; tensors, buffers and operator codes in
order of first use; a fixed description), so identical submodels are identical bytes, hence one sha256, whatever
the source files call their tensors or however they order them.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_maas import __version__
from edge_maas.errors import EdgeMaasError, PartitionError
from edge_maas.files import atomic_write
from edge_maas.manifest import Golden, TensorData, TensorDesc
from edge_maas.partition.costs import op_macs
from edge_maas.partition.split import _move_into, require_int8, tensor_desc
from edge_maas.service import ServiceInfo, ServiceManifest, Submodel, Task
from edge_maas.tflite.graph import Graph, load_graph
from edge_maas.tflite.schema import schema
from edge_maas.tflite.writer import _op_tensors, _remap, pack_model

log = logging.getLogger(__name__)

BACKBONE = "backbone"
_TASK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_DESCRIPTION = "edge_maas submodel"


@dataclass(frozen=True)
class Source:
    """One whole model and the task it becomes."""

    task: str
    data: bytes
    path: str = ""


def compose_service(sources: Sequence[Source], out_dir: str | Path, name: str, version: str = "1",
                    golden_seed: int = 0) -> ServiceManifest:  # fmt: skip
    """Cut the models at their longest common prefix and write ``out_dir/manifest.json`` (schema 2) with
    ``backbone.tflite`` and ``head_TASK.tflite`` beside it; return the manifest.

    Everything is built and checked in memory (each task's golden pair from its original model on the
    interpreter's built-in kernels, then reproduced through the composed service) before anything is written;
    the folder is then written all or nothing as `split` does.  Errors: PartitionError (task name clash, models
    with nothing in common, inputs that differ), ModelFormatError (unreadable or non-int8 model), EdgeMaasError
    (the folder cannot be written)."""
    _check_task_names([s.task for s in sources])
    graphs = [load_graph(s.data) for s in sources]
    for g in graphs:
        require_int8(g)
    p = common_prefix(graphs)
    if p == 0:
        listed = ", ".join(s.path or s.task for s in sources)
        raise PartitionError(f"the models {listed} have nothing in common to share (their first operators, inputs, "
                             "weights or quantization differ); compose models that share a backbone")  # fmt: skip
    manifest, blobs = _compose(sources, graphs, p, name, version, golden_seed)
    _verify(manifest, blobs)
    _write(manifest, blobs, Path(out_dir))
    return manifest


# -- matching -----------------------------------------------------------------------------------------------------


def _fp(obj):
    """A comparable structural value of a schema *T object (numpy arrays by dtype, shape and bytes)."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, np.ndarray):
        return ("nd", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, (list, tuple)):
        return tuple(_fp(x) for x in obj)
    return (type(obj).__name__, tuple((k, _fp(v)) for k, v in sorted(vars(obj).items())))


def _tensor_fp(g: Graph, t: int, role) -> tuple:
    """What makes tensor ``t`` the same across models: its type, shape and quantization (name aside), constant
    bytes, and ``role`` (where an activation comes from)."""
    raw = g.model.subgraphs[0].tensors[t]
    fields = tuple((k, _fp(v)) for k, v in sorted(vars(raw).items()) if k not in ("name", "buffer"))
    info = g.tensors[t]
    data = bytes(np.asarray(g.model.buffers[info.buffer].data, dtype=np.uint8)) if info.is_constant else None
    return fields, data, role


def _op_fp(g: Graph, i: int, roles: dict[int, tuple]) -> tuple:
    src = g.model.subgraphs[0].operators[i]
    code = _fp(g.model.operatorCodes[src.opcodeIndex])
    skip = ("opcodeIndex", "inputs", "outputs", "intermediates", "debugMetadataIndex")
    fields = tuple((k, _fp(v)) for k, v in sorted(vars(src).items()) if k not in skip)
    ins = tuple(None if t < 0 else _tensor_fp(g, t, roles.get(t)) for t in g.ops[i].inputs)
    return code, fields, ins


def common_prefix(graphs: Sequence[Graph]) -> int:
    """How many leading operators every graph shares (0 when their inputs already differ)."""
    if len({len(g.inputs) for g in graphs}) != 1:
        return 0
    roles = [{t: ("input", k) for k, t in enumerate(g.inputs)} for g in graphs]
    if len({tuple(_tensor_fp(g, t, r[t]) for t in g.inputs) for g, r in zip(graphs, roles)}) != 1:
        return 0
    p = 0
    while p < min(len(g.ops) for g in graphs):
        fps = set()
        for g, r in zip(graphs, roles):
            op = g.ops[p]
            outs = tuple(_tensor_fp(g, t, ("op", p, j)) for j, t in enumerate(op.outputs))
            fps.add((_op_fp(g, p, r), outs))
        if len(fps) != 1:
            break
        for g, r in zip(graphs, roles):
            r.update({t: ("op", p, j) for j, t in enumerate(g.ops[p].outputs)})
        p += 1
    return p


# -- building -----------------------------------------------------------------------------------------------------


def build_canonical(g: Graph, ops: Sequence[int], inputs: Sequence[int], outputs: Sequence[int],
                    names: dict[int, str], prefix: str) -> bytes:  # fmt: skip
    """Ops ``ops`` of ``g`` as a standalone model whose bytes depend only on what the ops compute: boundary
    tensors named by ``names``, others ``prefix/N``; tensors, buffers (deduplicated by content) and operator
    codes in order of first use."""
    src, sg = g.model, g.model.subgraphs[0]
    order: dict[int, int] = {}
    for t in [*inputs, *(t for i in ops for t in _op_tensors(sg.operators[i])), *outputs]:
        if t >= 0 and t not in order:
            order[t] = len(order)
    buffers = [schema.BufferT()]  # buffer 0: the conventional empty sentinel
    by_content: dict[bytes, int] = {}
    tensors, k = [], 0
    for old in order:
        info = g.tensors[old]
        t = copy.copy(sg.tensors[old])
        if old in names:
            t.name = names[old].encode()
        else:
            t.name, k = f"{prefix}/{k}".encode(), k + 1
        t.buffer = 0
        if info.is_constant:
            data = bytes(np.asarray(src.buffers[info.buffer].data, dtype=np.uint8))
            if data not in by_content:
                by_content[data] = len(buffers)
                buffers.append(schema.BufferT(data=src.buffers[info.buffer].data))
            t.buffer = by_content[data]
        tensors.append(t)
    codes: list = []
    code_index: dict = {}
    new_ops = []
    for i in ops:
        op = sg.operators[i]
        key = _fp(src.operatorCodes[op.opcodeIndex])
        if key not in code_index:
            code_index[key] = len(codes)
            codes.append(src.operatorCodes[op.opcodeIndex])
        n = copy.copy(op)
        n.opcodeIndex = code_index[key]
        n.inputs = _remap(op.inputs, order)
        n.outputs = _remap(op.outputs, order)
        n.intermediates = _remap(op.intermediates, order) if op.intermediates is not None else None
        n.debugMetadataIndex = -1
        new_ops.append(n)
    return pack_model(tensors, new_ops, [order[t] for t in inputs], [order[t] for t in outputs], codes, buffers,
                      _DESCRIPTION)  # fmt: skip


def _desc(g: Graph, t: int, name: str) -> TensorDesc:
    return tensor_desc(g.tensors[t]).model_copy(update={"name": name})


def _submodel(g: Graph, name: str, ops: Sequence[int], ins: Sequence[int], outs: Sequence[int],
              names: dict[int, str], blob: bytes) -> Submodel:  # fmt: skip
    return Submodel(
        name=name, file=f"{name}.tflite", sha256=hashlib.sha256(blob).hexdigest(), size=len(blob),
        inputs=tuple(_desc(g, t, names[t]) for t in ins), outputs=tuple(_desc(g, t, names[t]) for t in outs),
        ops=tuple(g.ops[i].op for i in ops), macs=sum(op_macs(g, g.ops[i]) for i in ops),
        constant_bytes=g.constant_bytes(ops),
    )  # fmt: skip


def _compose(sources: Sequence[Source], graphs: Sequence[Graph], p: int, name: str, version: str,
             seed: int) -> tuple[ServiceManifest, dict[str, bytes]]:  # fmt: skip
    g0 = graphs[0]
    prefix = range(p)
    in_names = [f"input_{k}" for k in range(len(g0.inputs))]
    # Backbone outputs: what any model reads after the prefix, or answers, from it; by (op, slot), the same
    # positions in every model since the prefixes match.
    slots = []
    for i in prefix:
        for j in range(len(g0.ops[i].outputs)):
            if any(_read_after(g, g.ops[i].outputs[j], p) for g in graphs):
                slots.append((i, j))
    out_names = {s: f"{BACKBONE}/out_{k}" for k, s in enumerate(slots)}

    def roles(g: Graph) -> dict[int, str]:
        names = {t: in_names[k] for k, t in enumerate(g.inputs)}
        names.update({g.ops[i].outputs[j]: n for (i, j), n in out_names.items()})
        return names

    bb_names = roles(g0)
    bb_in = [t for t in g0.inputs if any(t in g0.ops[i].inputs for i in prefix)]
    bb_out = [g0.ops[i].outputs[j] for i, j in slots]
    blob = build_canonical(g0, prefix, bb_in, bb_out, bb_names, BACKBONE)
    blobs = {f"{BACKBONE}.tflite": blob}
    submodels = [_submodel(g0, BACKBONE, prefix, bb_in, bb_out, bb_names, blob)]
    tasks = []
    for src, g in zip(sources, graphs):
        names = roles(g)
        rest = range(p, len(g.ops))
        written = {t for i in rest for t in g.ops[i].outputs}
        head_out = [t for t in g.outputs if t in written]
        for k, t in enumerate(g.outputs):
            if t in written:
                names[t] = f"{src.task}/out_{k}"
        if head_out:
            read = {t for i in rest for t in g.ops[i].inputs if t >= 0 and not g.tensors[t].is_constant}
            head_in = [t for t in g.inputs if t in read] + [g.ops[i].outputs[j] for i, j in slots
                                                            if g.ops[i].outputs[j] in read]  # fmt: skip
            sub = f"head_{src.task}"
            blob = build_canonical(g, rest, head_in, head_out, names, sub)
            blobs[f"{sub}.tflite"] = blob
            submodels.append(_submodel(g, sub, rest, head_in, head_out, names, blob))
        tasks.append(Task(name=src.task, outputs=tuple(names[t] for t in g.outputs),
                          golden=_golden(src.data, g, [names[t] for t in g.outputs], in_names, seed)))  # fmt: skip
    manifest = ServiceManifest(
        service=ServiceInfo(name=name, version=version),
        inputs=tuple(_desc(g0, t, in_names[k]) for k, t in enumerate(g0.inputs)),
        submodels=tuple(submodels),
        tasks=tuple(tasks),
        created_by=f"edge_maas {__version__}",
    )
    manifest._check_consistency()
    return manifest, blobs


def _read_after(g: Graph, t: int, p: int) -> bool:
    return t in g.outputs or any(i >= p for i in g.consumers.get(t, ()))


def _golden(data: bytes, g: Graph, out_names: list[str], in_names: list[str], seed: int) -> Golden:
    """A seeded input and the whole original model's output on the interpreter's built-in kernels, under the
    service's tensor names (the interpreter lists inputs and outputs in the model's order)."""
    from edge_maas.backends.litert import LiteRTBackend

    rng = np.random.default_rng(seed)
    backend = LiteRTBackend(data, xnnpack=False)
    try:
        feed = {}
        for spec in backend.inputs:
            info = np.iinfo(spec.dtype)
            feed[spec.name] = rng.integers(info.min, info.max, size=spec.shape, endpoint=True, dtype=spec.dtype)
        outs = backend.run(feed)
    finally:
        backend.close()
    return Golden(
        inputs=tuple(TensorData.from_array(n, feed[s.name]) for n, s in zip(in_names, backend.inputs)),
        outputs=tuple(TensorData.from_array(n, outs[s.name]) for n, s in zip(out_names, backend.outputs)),
    )


def _verify(manifest: ServiceManifest, blobs: dict[str, bytes]) -> None:
    """The composed service must give every task's golden output bit for bit before anything is written."""
    from edge_maas.service_pipeline import ServicePipeline

    pipe = ServicePipeline.from_reader(manifest, lambda s: blobs[s.file], "litert", xnnpack=False)
    try:
        bad = pipe.check_golden()
    finally:
        pipe.close()
    if bad:
        raise PartitionError(f"the composed service does not reproduce the original models for tasks {bad}; "
                             "nothing was written")  # fmt: skip


def _check_task_names(names: Sequence[str]) -> None:
    for n in names:
        if not _TASK_NAME.match(n):
            raise PartitionError(f"task name {n!r} may hold only letters, digits, '_', '.' and '-'")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PartitionError(f"task name clash: {', '.join(dup)} names more than one model; name each task with "
                             "--task NAME=PATH")  # fmt: skip


def _write(manifest: ServiceManifest, blobs: dict[str, bytes], out: Path) -> None:
    try:
        if out.parent.exists() and not out.parent.is_dir():
            raise EdgeMaasError(f"cannot write the service to {out}: {out.parent} is not a folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{secrets.token_hex(6)}"
        tmp.mkdir()
    except OSError as exc:
        raise EdgeMaasError(f"cannot write the service to {out}: {exc.strerror or exc}") from None
    try:
        for fname, blob in blobs.items():
            atomic_write(tmp / fname, blob)
        atomic_write(tmp / "manifest.json", manifest.to_json().encode())
        _move_into(tmp, out, list(blobs))
    except OSError as exc:
        raise EdgeMaasError(f"cannot write the service to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
