"""Human-readable summaries of a model or a split model."""

from __future__ import annotations

from pathlib import Path

from edge_maas.manifest import Manifest, TensorDesc
from edge_maas.partition.costs import op_macs
from edge_maas.tflite.graph import load_graph


def _short(name: str, width: int = 48) -> str:
    return name if len(name) <= width else name[: width // 2 - 2] + "..." + name[-(width // 2 - 1):]


def describe_model(model_bytes: bytes) -> str:
    g = load_graph(model_bytes)
    macs = [op_macs(g, op) for op in g.ops]
    lines = [
        f"model: {g.size_bytes} bytes, {len(g.ops)} ops, {len(g.tensors)} tensors, "
        f"{g.constant_bytes(range(len(g.ops)))} bytes of constants, {sum(macs)} MACs",
        "inputs:  " + ", ".join(_tensor(g.tensors[t]) for t in g.inputs),
        "outputs: " + ", ".join(_tensor(g.tensors[t]) for t in g.outputs),
        f"{'#':>3} {'op':<18} {'MACs':>10} {'const B':>8}  output (cut here with --at NAME)",
    ]
    for op, m in zip(g.ops, macs):
        out = g.tensors[op.outputs[0]] if op.outputs else None
        lines.append(
            f"{op.index:>3} {op.op:<18} {m:>10} {g.constant_bytes([op.index]):>8}  "
            + (f"{out.name}  {out.dtype}{list(out.shape)}" if out else "-")
        )
    return "\n".join(lines)


def _tensor(t) -> str:
    q = f" q(scale={t.quant.scale[0]:.4g}, zp={t.quant.zero_point[0]})" if t.quant and not t.quant.per_channel else ""
    return f"{t.name} {t.dtype}{list(t.shape)}{q}"


def _desc(t: TensorDesc) -> str:
    return f"{_short(t.name)} {t.dtype}{list(t.shape)} ({t.nbytes} B)"


def describe_manifest(path: Path) -> str:
    from edge_maas.service import SCHEMA_VERSION, schema_version_of

    try:
        if schema_version_of(Path(path).read_bytes()) == SCHEMA_VERSION:
            return describe_service(path)
    except OSError:
        pass  # Manifest.load reports it
    m = Manifest.load(path)
    total = sum(s.size for s in m.shards)
    lines = [
        f"{m.model.name}@{m.model.version}: {len(m.shards)} shards, {total} bytes "
        f"(source {m.model.source_size} bytes, sha256 {m.model.source_sha256[:12]}), "
        f"{sum(s.macs for s in m.shards)} MACs, signed: {'yes' if m.signatures else 'no'}",
        "inputs:  " + ", ".join(_desc(t) for t in m.inputs),
        "outputs: " + ", ".join(_desc(t) for t in m.outputs),
    ]
    for s in m.shards:
        lines.append(f"shard {s.index} {s.file}: {s.size} B, {s.constant_bytes} B constants, {s.macs} MACs, "
                     f"sha256 {s.sha256[:12]}")
        lines.append(f"    ops: {' '.join(s.ops)}")
        lines += _boundary(s)
    return "\n".join(lines)


def _boundary(part) -> list[str]:
    """The tensors a shard or submodel reads and writes."""
    return [f"    in:  {'; '.join(_desc(t) for t in part.inputs)}", f"    out: {'; '.join(_desc(t) for t in part.outputs)}"]


def describe_service(path: Path) -> str:
    """A v2 service: its submodels (hash, size, ops, MACs, boundary tensors), tasks and the submodels each uses."""
    from edge_maas.service import ServiceManifest

    m = ServiceManifest.load(path)
    total = sum(s.size for s in m.submodels)
    lines = [
        (f"{m.service.name}@{m.service.version} (service): {len(m.submodels)} submodels, {total} bytes, "
         f"{len(m.tasks)} tasks, signed: {'yes' if m.signatures else 'no'}"),
        "inputs:  " + ", ".join(_desc(t) for t in m.inputs),
    ]
    for s in m.submodels:
        lines.append(f"submodel {s.name} {s.file}: sha256 {s.sha256[:12]}, {s.size} B, {len(s.ops)} ops, "
                     f"{s.macs} MACs, {s.constant_bytes} B constants; tasks: {', '.join(m.tasks_using(s.name))}")
        lines += _boundary(s)
    for t in m.tasks:
        plan = m.task_plan([t.name])
        lines.append(f"task {t.name}: {' -> '.join(s.name for s in plan)}; {sum(s.macs for s in plan)} MACs; "
                     f"outputs {', '.join(_desc(m.tensor(o)) for o in t.outputs)}")
    return "\n".join(lines)
