"""The service manifest (schema version 2): content-addressed submodels plus named tasks.

A service is a graph of submodels: each reads tensors by name (service inputs or other submodels' outputs) and
writes named tensors; a task names the output tensors it answers, hence the submodels it needs.  Several tasks
share submodels (a backbone is stored, shipped and run once).  A version-1 manifest (one model cut into a chain)
loads as a one-task service (`load_any`).  JSON, validated on load like edge_maas.manifest (unknown fields and
wrong types are errors); `signatures` cover the canonical JSON of everything else.  Schema: docs/service.schema.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from edge_maas.errors import ManifestError, UnknownTaskError
from edge_maas.manifest import (
    Golden,
    Manifest,
    Sha256,
    SignedDocument,
    TensorDesc,
    _Strict,
    read_blob,
    read_manifest_bytes,
    verify_blob,
)
from edge_maas.trust.envelope import Signature

SCHEMA_VERSION = 2
_NAME = r"^[A-Za-z0-9_.-]+$"




class ServiceInfo(_Strict):
    name: str = Field(pattern=_NAME)
    version: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    release: int | None = Field(default=None, ge=1)  # set by the registry at publish: orders versions


class Submodel(_Strict):
    """One standalone .tflite, identified by its sha256; tensors at its boundary carry service-wide names."""

    name: str = Field(pattern=_NAME)
    file: str = Field(pattern=r"^[A-Za-z0-9_.-]+\.tflite$")  # a bare file name: no paths, no '..'
    sha256: str = Sha256
    size: int = Field(ge=8)
    inputs: tuple[TensorDesc, ...] = Field(min_length=1)
    outputs: tuple[TensorDesc, ...] = Field(min_length=1)
    ops: tuple[str, ...] = Field(min_length=1)
    macs: int = Field(ge=0)
    constant_bytes: int = Field(ge=0)


class Task(_Strict):
    """A named answer: the tensors it returns, and a golden pair from the original whole model."""

    name: str = Field(pattern=_NAME)
    outputs: tuple[str, ...] = Field(min_length=1)
    golden: Golden


class ServiceManifest(SignedDocument):
    KIND: ClassVar[str] = "service manifest"

    schema_version: Literal[2] = SCHEMA_VERSION
    service: ServiceInfo
    inputs: tuple[TensorDesc, ...] = Field(min_length=1)
    submodels: tuple[Submodel, ...] = Field(min_length=1)
    tasks: tuple[Task, ...] = Field(min_length=1)
    created_by: str
    signatures: tuple[Signature, ...] = Field(default=(), max_length=16)  # release role (edge_maas.trust)

    # -- graph -------------------------------------------------------------------------------------------------

    def submodel(self, name: str) -> Submodel:
        for s in self.submodels:
            if s.name == name:
                return s
        raise ManifestError(f"the service has no submodel {name!r}")

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise UnknownTaskError(f"the service {self.service.name} has no task {name!r}; its tasks: "
                               f"{', '.join(t.name for t in self.tasks)}")  # fmt: skip

    def producers(self) -> dict[str, Submodel]:
        """Tensor name -> the submodel that writes it."""
        return {t.name: s for s in self.submodels for t in s.outputs}

    def tensor(self, name: str) -> TensorDesc:
        """The description of a service input or a submodel output, by name."""
        for t in self.inputs:
            if t.name == name:
                return t
        for s in self.submodels:
            for t in s.outputs:
                if t.name == name:
                    return t
        raise ManifestError(f"the service has no tensor {name!r}")

    def task_plan(self, tasks: Iterable[str]) -> list[Submodel]:
        """The submodels the given tasks need, each once, in an order where every one runs after those it reads
        from (the manifest's order among them).  UnknownTaskError for a task the service does not have."""
        names = list(tasks)
        if not names:
            raise UnknownTaskError("no task named; the service's tasks: " + ", ".join(t.name for t in self.tasks))
        return self.tensor_plan([out for n in names for out in self.task(n).outputs])

    def tensor_plan(self, tensors: Iterable[str]) -> list[Submodel]:
        """The submodels that compute the given tensors (submodel outputs), each once, in dependency order.
        ManifestError for a name no submodel writes (a service input needs no submodel; ask for what it feeds)."""
        producers = self.producers()
        stack = list(tensors)
        unknown = [t for t in stack if t not in producers]
        if unknown:
            raise ManifestError(f"no submodel of the service writes {unknown}")
        needed: set[str] = set()
        while stack:
            s = producers[stack.pop()]
            if s.name not in needed:
                needed.add(s.name)
                stack.extend(t.name for t in s.inputs if t.name in producers)
        return [s for s in self._order() if s.name in needed]

    def tasks_or_only(self, tasks: Sequence[str], how: str = "name one or several") -> list[str]:
        """``tasks`` as given, or, when none is named, the only task of a one-task service (what a request that
        names no task gets).  UnknownTaskError when none is named and the service has several; ``how`` says how
        to name them."""
        if tasks:
            return list(tasks)
        if len(self.tasks) != 1:
            raise UnknownTaskError(f"{self.name}@{self.version} has {len(self.tasks)} tasks: {how} "
                                   f"({', '.join(t.name for t in self.tasks)})")  # fmt: skip
        return [self.tasks[0].name]

    def tasks_using(self, submodel: str) -> list[str]:
        return [t.name for t in self.tasks if any(s.name == submodel for s in self.task_plan([t.name]))]

    def _order(self) -> list[Submodel]:
        """Submodels in dependency order (stable: manifest order where free); ManifestError on a cycle."""
        producers = self.producers()
        done: set[str] = set()
        order: list[Submodel] = []
        pending = list(self.submodels)
        while pending:
            ready = [s for s in pending if all(producers[t.name].name in done for t in s.inputs if t.name in producers)]
            if not ready:
                raise ManifestError("invalid service manifest: submodels " + ", ".join(s.name for s in pending)
                                    + " form a cycle (each reads a tensor another of them writes)")  # fmt: skip
            for s in ready:
                done.add(s.name)
                order.append(s)
            pending = [s for s in pending if s.name not in done]
        return order

    def _check_consistency(self) -> None:
        for what, names in (("task", [t.name for t in self.tasks]), ("submodel", [s.name for s in self.submodels]),
                            ("submodel file", [s.file for s in self.submodels]),
                            ("service input", [t.name for t in self.inputs])):  # fmt: skip
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ManifestError(f"invalid service manifest: {what} names {dup} are used more than once")
        inputs = {t.name for t in self.inputs}
        written: dict[str, str] = {}
        for s in self.submodels:
            for t in s.outputs:
                if t.name in inputs or t.name in written:
                    by = "a service input" if t.name in inputs else f"also written by {written[t.name]}"
                    raise ManifestError(f"invalid service manifest: submodel {s.name} writes {t.name!r}, {by}")
                written[t.name] = s.name
        for s in self.submodels:
            missing = [t.name for t in s.inputs if t.name not in inputs and t.name not in written]
            if missing:
                raise ManifestError(f"invalid service manifest: submodel {s.name} reads {missing}, which is neither "
                                    "a service input nor written by a submodel")  # fmt: skip
        for t in self.tasks:
            missing = [o for o in t.outputs if o not in written]
            if missing:
                raise ManifestError(f"invalid service manifest: task {t.name} answers {missing}, which no submodel "
                                    "produces")  # fmt: skip
        self._order()  # cycles

    # -- what every manifest has (edge_maas.manifest.SignedDocument) ------------------------------------------
    @property
    def name(self) -> str:
        return self.service.name

    @property
    def version(self) -> str:
        return self.service.version

    @property
    def release(self) -> int | None:
        return self.service.release

    def with_release(self, release: int) -> ServiceManifest:
        return self.model_copy(update={"service": self.service.model_copy(update={"release": release})})

    def blobs(self) -> list[tuple[str, str, int, str]]:
        return [(f"submodel {s.name} ({s.file})", s.file, s.size, s.sha256) for s in self.submodels]

    def by_sha256(self, sha256: str) -> Submodel:
        for s in self.submodels:
            if s.sha256 == sha256:
                return s
        raise ManifestError(f"service {self.service.name}@{self.service.version} has no submodel {sha256[:12]}")

    # -- bytes -------------------------------------------------------------------------------------------------

    def verify_submodel(self, sub: Submodel, data: bytes) -> None:
        """Raise ManifestError unless ``data`` is exactly the submodel the manifest names."""
        verify_blob(f"submodel {sub.name} ({sub.file})", data, sub.size, sub.sha256)

    def read_submodel(self, directory: str | Path, sub: Submodel) -> bytes:
        """Read a submodel file and verify it; unverified bytes never leave this function."""
        return read_blob(Path(directory) / sub.file, f"submodel {sub.name} ({sub.file})", sub.size, sub.sha256)


def from_v1(m: Manifest) -> ServiceManifest:
    """A version-1 manifest as a one-task service: its shards are the submodels, the task is named after the
    model.  The v1 signatures cover the v1 bytes, so the view carries none (verify the original)."""
    subs = tuple(
        Submodel(**s.model_dump(exclude={"index"}), name=f"shard_{s.index:02d}") for s in m.shards
    )
    return ServiceManifest(
        service=ServiceInfo(name=m.model.name, version=m.model.version, release=m.model.release),
        inputs=m.inputs,
        submodels=subs,
        tasks=(Task(name=m.model.name, outputs=tuple(t.name for t in m.outputs), golden=m.golden),),
        created_by=m.created_by,
    )


def schema_version_of(text: bytes) -> int | None:
    """The manifest's schema_version field, or None when it has none (or is not a JSON object)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    v = doc.get("schema_version") if isinstance(doc, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def parse_document(text: bytes) -> Manifest | ServiceManifest:
    """A manifest of either schema version, as it is (v1 stays a Manifest: its signatures cover v1 bytes).
    ManifestError when it is neither."""
    if schema_version_of(text) == SCHEMA_VERSION:
        return ServiceManifest.from_json(text)
    return Manifest.from_json(text)


def load_document(path: str | Path) -> Manifest | ServiceManifest:
    return parse_document(read_manifest_bytes(path))


def load_any(path: str | Path) -> ServiceManifest:
    """A v2 service manifest, or a v1 manifest as a one-task service.  ManifestError when neither."""
    doc = load_document(path)
    return doc if isinstance(doc, ServiceManifest) else from_v1(doc)


def parse_tasks(spec: str | Sequence[str] | None) -> list[str]:
    """'a,b' or ['a', 'b'] -> ['a', 'b'] (blanks dropped, order kept, repeats once)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec or [])
    return list(dict.fromkeys(x.strip() for x in items if x.strip()))


def flatten_outputs(result: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Outputs by task then tensor -> one mapping keyed ``TASK/TENSOR``; a tensor whose name already starts
    with ``TASK/`` (compose names a head's outputs so) keeps its name."""
    return {k if k.startswith(f"{t}/") else f"{t}/{k}": v for t, outs in result.items() for k, v in outs.items()}


def json_schema() -> dict:
    return ServiceManifest.model_json_schema()
