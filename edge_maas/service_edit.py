"""Edit a service: add a task answered by a new submodel, bump the version, write the folder safely.

Pure functions on ServiceManifest (the registry and the demo reuse them) plus one writer.  An edited manifest is a
new, unreleased version: ``release`` is dropped (the registry numbers releases at publish) and ``signatures`` are
empty (the registry signs what it publishes).  Everything is checked before anything is written: a task or
submodel name clash, a new submodel that reads a tensor the service does not have (or with another shape, dtype or
quantization), or that writes one it already has.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from edge_maas.errors import EdgeMaasError
from edge_maas.files import atomic_write
from edge_maas.manifest import Golden, TensorDesc
from edge_maas.service import ServiceManifest, Submodel, Task

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_VERSION = re.compile(r"^[A-Za-z0-9_.+-]+$")
_TRAILING_INT = re.compile(r"^(.*?)(\d+)$")


class ServiceEditError(EdgeMaasError):
    """An edit the service cannot take: a name clash, a submodel that does not fit, a bad version."""


def head_name(task: str) -> str:
    """The submodel (and file stem) answering a task added to a service: ``head_TASK``, as compose names heads."""
    return f"head_{task}"


def output_name(task: str, k: int = 0) -> str:
    """The service-wide name of a task head's k-th output: ``TASK/out_K``, as compose names them."""
    return f"{task}/out_{k}"


def next_version(version: str) -> str:
    """The version after ``version``: its trailing integer plus one ("1" -> "2", "1.0" -> "1.1", "v9" -> "v10"),
    else ".1" appended ("beta" -> "beta.1")."""
    m = _TRAILING_INT.match(version)
    if not m:
        return f"{version}.1"
    digits = m.group(2)
    return m.group(1) + str(int(digits) + 1).zfill(len(digits))


def edited_version(manifest: ServiceManifest, version: str | None = None) -> str:
    """The version an edit of ``manifest`` gets: ``version``, or next_version of the current one.
    ServiceEditError for a malformed version or the current one."""
    new = next_version(manifest.service.version) if version is None else version
    if not isinstance(new, str) or not _VERSION.match(new):
        raise ServiceEditError(f"version {new!r} may hold only letters, digits and '_.+-'")
    if new == manifest.service.version:
        raise ServiceEditError(f"version {new!r} is the service's current version; give a new one")
    return new


def check_new_task(manifest: ServiceManifest, task: str, submodel: str | None = None) -> None:
    """ServiceEditError unless ``task`` (answered by submodel ``submodel``, default head_TASK) is a new, valid
    name in the service: no task, submodel or submodel file is called that already."""
    submodel = submodel or head_name(task)
    if not isinstance(task, str) or not _NAME.match(task):
        raise ServiceEditError(f"task name {task!r} may hold only letters, digits, '_', '.' and '-'")
    if task in {t.name for t in manifest.tasks}:
        raise ServiceEditError(f"task name clash: the service {manifest.service.name} already has a task "
                               f"{task!r} (its tasks: {', '.join(t.name for t in manifest.tasks)}); pick another "
                               "--task")  # fmt: skip
    clash = [s.name for s in manifest.submodels if s.name == submodel or s.file == f"{submodel}.tflite"]
    if clash:
        raise ServiceEditError(f"task name clash: the service {manifest.service.name} already has a submodel "
                               f"{clash[0]!r} ({submodel}.tflite); pick another --task")  # fmt: skip


def make_submodel(name: str, blob: bytes, inputs: Sequence[TensorDesc], outputs: Sequence[TensorDesc]) -> Submodel:
    """The manifest entry of a standalone .tflite: sha256, size, ops, MACs and constant bytes from its bytes.

    ``inputs``/``outputs`` are the service-wide descriptions of its boundary tensors, in the model's order; each
    must match the model's own tensor (name, shape, dtype, quantization), else ServiceEditError."""
    from edge_maas.partition.costs import op_macs
    from edge_maas.partition.split import tensor_desc
    from edge_maas.tflite.graph import load_graph

    g = load_graph(blob)
    for what, declared, actual in (("inputs", inputs, g.inputs), ("outputs", outputs, g.outputs)):
        got = [tensor_desc(g.tensors[t]) for t in actual]
        if list(declared) != got:
            raise ServiceEditError(f"submodel {name} {what} {[d.name for d in got]} do not match the "
                                   f"service's {[d.name for d in declared]} (names, shapes, dtypes and "
                                   "quantization)")  # fmt: skip
    ops = range(len(g.ops))
    return Submodel(
        name=name, file=f"{name}.tflite", sha256=hashlib.sha256(blob).hexdigest(), size=len(blob),
        inputs=tuple(inputs), outputs=tuple(outputs), ops=tuple(op.op for op in g.ops),
        macs=sum(op_macs(g, g.ops[i]) for i in ops), constant_bytes=g.constant_bytes(ops),
    )  # fmt: skip


def add_task(manifest: ServiceManifest, submodel: Submodel, task: Task, version: str | None = None) -> ServiceManifest:
    """A copy of ``manifest`` with ``submodel`` and ``task`` added (the task may also read tensors that existing
    submodels write), at ``version`` (default: next_version), unreleased and unsigned.  The result is validated
    as if loaded from disk.  Errors: ServiceEditError (name clash, a submodel that does not fit the service, a
    bad or unchanged version), ManifestError (the result is not a consistent service)."""
    check_new_task(manifest, task.name, submodel.name)
    for t in submodel.inputs:
        try:
            have = manifest.tensor(t.name)
        except EdgeMaasError:
            raise ServiceEditError(f"submodel {submodel.name} reads {t.name!r}, which is not a tensor of the "
                                   f"service; its tensors: {', '.join(_tensor_names(manifest))}") from None  # fmt: skip
        if have != t:
            raise ServiceEditError(f"submodel {submodel.name} reads {t.name!r} as {_describe(t)}; the service has "
                                   f"it as {_describe(have)}")  # fmt: skip
    taken = set(_tensor_names(manifest))
    for t in submodel.outputs:
        if t.name in taken:
            raise ServiceEditError(f"submodel {submodel.name} writes {t.name!r}, which the service already has")
    new_version = edited_version(manifest, version)
    edited = manifest.model_copy(update={
        "service": manifest.service.model_copy(update={"version": new_version, "release": None}),
        "submodels": (*manifest.submodels, submodel),
        "tasks": (*manifest.tasks, task),
        "signatures": (),
    })  # fmt: skip
    # model_copy does not validate: a round trip through JSON checks the result as a device would on load.
    return ServiceManifest.from_json(edited.to_json())


def remove_task(manifest: ServiceManifest, task: str, version: str | None = None, bump: bool = True) -> ServiceManifest:
    """A copy of ``manifest`` without ``task`` and the submodels no other task needs, at ``version`` (default:
    next_version; with ``bump`` False the version stays, for an edit that adds a task next), unreleased and
    unsigned.  A device that gets it drops that task and keeps the others loaded
    as they are.  Errors: UnknownTaskError (no such task), ServiceEditError (the service's only task, a bad or
    unchanged version)."""
    manifest.task(task)
    if len(manifest.tasks) == 1:
        raise ServiceEditError(f"{task!r} is the only task of {manifest.service.name}: a service needs one")
    keep = [t for t in manifest.tasks if t.name != task]
    used = {s.name for s in manifest.task_plan([t.name for t in keep])}
    edited = manifest.model_copy(update={
        "service": manifest.service.model_copy(update={
            "version": edited_version(manifest, version) if bump else manifest.service.version, "release": None}),
        "submodels": tuple(s for s in manifest.submodels if s.name in used),
        "tasks": tuple(keep),
        "signatures": (),
    })  # fmt: skip
    return ServiceManifest.from_json(edited.to_json())


def with_golden(manifest: ServiceManifest, task: str, golden: Golden) -> ServiceManifest:
    """A copy of ``manifest`` with task ``task``'s golden pair replaced (validated as from disk)."""
    manifest.task(task)
    tasks = tuple(t.model_copy(update={"golden": golden}) if t.name == task else t for t in manifest.tasks)
    return ServiceManifest.from_json(manifest.model_copy(update={"tasks": tasks}).to_json())


def write_service(directory: str | Path, manifest: ServiceManifest, files: Mapping[str, bytes]) -> Path:
    """Write the new submodel ``files`` (bare file name -> bytes, each checked against the manifest) into
    ``directory``, then ``manifest.json`` last, each atomically: a reader sees the old service or the new one.
    A failure before the manifest leaves at most an unreferenced submodel file.  Returns the manifest's path.
    Errors: ServiceEditError (a file the manifest does not name or whose bytes differ), EdgeMaasError (cannot
    write)."""
    directory = Path(directory)
    by_file = {s.file: s for s in manifest.submodels}
    for fname, blob in files.items():
        if fname not in by_file:
            raise ServiceEditError(f"{fname} is not a submodel file of the service")
        manifest.verify_submodel(by_file[fname], blob)
    try:
        for fname, blob in files.items():
            atomic_write(directory / fname, blob)
        atomic_write(directory / "manifest.json", manifest.to_json().encode())
    except OSError as exc:
        raise EdgeMaasError(f"cannot write the service to {directory}: {exc.strerror or exc}") from None
    return directory / "manifest.json"


def _tensor_names(manifest: ServiceManifest) -> list[str]:
    return [t.name for t in manifest.inputs] + [t.name for s in manifest.submodels for t in s.outputs]


def _describe(t: TensorDesc) -> str:
    return f"{t.dtype}{list(t.shape)} scale {list(t.scale)} zero point {list(t.zero_point)}"
