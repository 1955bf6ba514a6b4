"""Extract shards for a cut plan and write them with their manifest."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import shutil
from pathlib import Path

import numpy as np

from edge_maas import __version__
from edge_maas.errors import EdgeMaasError, ModelFormatError
from edge_maas.files import atomic_write
from edge_maas.manifest import Golden, Manifest, ModelInfo, ShardDesc, TensorData, TensorDesc
from edge_maas.partition.costs import op_macs
from edge_maas.partition.plan import CutPlan
from edge_maas.tflite.graph import Graph, TensorInfo
from edge_maas.tflite.writer import build_submodel

log = logging.getLogger(__name__)


def tensor_desc(t: TensorInfo) -> TensorDesc:
    q = t.quant
    return TensorDesc(
        name=t.name,
        shape=t.shape,
        dtype=t.dtype,
        scale=q.scale if q else (),
        zero_point=q.zero_point if q else (),
        quantized_dimension=q.axis if q else 0,
    )


def require_int8(graph: Graph) -> None:
    """Refuse float models: edge_maas shards are full-integer (int8) models."""
    io = [graph.tensors[i] for i in graph.inputs + graph.outputs]
    bad = [f"{t.name} ({t.dtype})" for t in io if t.dtype not in ("int8", "uint8")]
    float_weights = sum(
        1 for op in graph.ops if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
        for t in op.inputs[1:2] if graph.tensors[t].dtype != "int8"
    )
    if bad or float_weights:
        what = f"inputs/outputs {', '.join(bad)}" if bad else f"{float_weights} layers with non-int8 weights"
        raise ModelFormatError(
            f"this is not a full-integer int8 model ({what}); quantize it first: edge-maas quantize MODEL "
            "--calibration DATA.npz --out INT8.tflite (or TensorFlow's converter with full int8 quantization)"
        )


def split_model(
    graph: Graph,
    plan: CutPlan,
    out_dir: str | Path,
    name: str,
    version: str = "1",
    source_bytes: bytes | None = None,
    golden_seed: int = 0,
) -> Manifest:
    """Write ``out_dir/shard_NN.tflite`` and ``out_dir/manifest.json``; return the manifest.

    All or nothing: everything is built in a temporary folder beside ``out_dir`` and only then moved in (a new
    ``out_dir`` by one rename; into an existing one file by file, its old manifest.json removed first and the new
    one moved last), so a failure leaves no shards without a manifest.  Errors: ModelFormatError (not an int8
    model), EdgeMaasError (the folder cannot be written)."""
    require_int8(graph)
    out = Path(out_dir)
    try:
        if out.parent.exists() and not out.parent.is_dir():
            raise EdgeMaasError(f"cannot write the split to {out}: {out.parent} is not a folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{secrets.token_hex(6)}"
        tmp.mkdir()  # not mkdtemp: its mode 0700 would become out's
    except OSError as exc:
        raise EdgeMaasError(f"cannot write the split to {out}: {exc.strerror or exc}") from None
    try:
        manifest = _write_split(graph, plan, tmp, name, version, source_bytes, golden_seed)
        _move_into(tmp, out, [s.file for s in manifest.shards])
    except OSError as exc:
        raise EdgeMaasError(f"cannot write the split to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _write_split(graph: Graph, plan: CutPlan, out: Path, name: str, version: str, source_bytes: bytes | None,
                 golden_seed: int) -> Manifest:  # fmt: skip
    shards = []
    width = max(2, len(str(len(plan.shards) - 1)))
    for spec in plan.shards:
        blob = build_submodel(
            graph, spec.ops, spec.inputs, spec.outputs, description=f"edge_maas shard {spec.index} of {name}@{version}"
        )
        fname = f"shard_{spec.index:0{width}d}.tflite"
        atomic_write(out / fname, blob)
        shards.append(
            ShardDesc(
                index=spec.index,
                file=fname,
                sha256=hashlib.sha256(blob).hexdigest(),
                size=len(blob),
                inputs=tuple(tensor_desc(graph.tensors[t]) for t in spec.inputs),
                outputs=tuple(tensor_desc(graph.tensors[t]) for t in spec.outputs),
                ops=tuple(graph.ops[i].op for i in spec.ops),
                macs=sum(op_macs(graph, graph.ops[i]) for i in spec.ops),
                constant_bytes=graph.constant_bytes(spec.ops),
            )
        )
        log.info("shard %d: ops %d..%d, %d bytes", spec.index, spec.ops[0], spec.ops[-1], len(blob))
    source_bytes = source_bytes if source_bytes is not None else b""
    manifest = Manifest(
        model=ModelInfo(
            name=name,
            version=version,
            source_sha256=hashlib.sha256(source_bytes).hexdigest(),
            source_size=len(source_bytes),
        ),
        inputs=tuple(tensor_desc(graph.tensors[t]) for t in graph.inputs),
        outputs=tuple(tensor_desc(graph.tensors[t]) for t in graph.outputs),
        shards=tuple(shards),
        golden=make_golden(graph, source_bytes, golden_seed),
        created_by=f"edge_maas {__version__}",
    )
    atomic_write(out / "manifest.json", manifest.to_json().encode())
    return manifest


def make_golden(graph: Graph, model_bytes: bytes, seed: int) -> Golden:
    """A seeded input and the whole model's output on the interpreter's built-in kernels."""
    from edge_maas.backends.litert import LiteRTBackend

    rng = np.random.default_rng(seed)
    backend = LiteRTBackend(model_bytes, xnnpack=False)
    feed = {}
    for spec in backend.inputs:
        info = np.iinfo(spec.dtype)
        feed[spec.name] = rng.integers(info.min, info.max, size=spec.shape, endpoint=True, dtype=spec.dtype)
    outs = backend.run(feed)
    return Golden(
        inputs=tuple(TensorData.from_array(k, v) for k, v in feed.items()),
        outputs=tuple(TensorData.from_array(k, v) for k, v in outs.items()),
    )


def _move_into(tmp: Path, out: Path, files: list[str]) -> None:
    """Move a finished split from tmp to out: one rename when out is new (or an empty folder)."""
    try:
        os.rename(tmp, out)  # replaces an empty folder too
        _fsync_dir(out.parent)
        return
    except OSError as exc:
        if not out.is_dir() or exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    # out holds other files (an earlier split, the user's own): no moment shows a manifest with other shards
    (out / "manifest.json").unlink(missing_ok=True)
    for f in files:
        os.replace(tmp / f, out / f)
    os.replace(tmp / "manifest.json", out / "manifest.json")
    _fsync_dir(out)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
