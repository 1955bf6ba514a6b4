"""Add a task to a service by transfer learning: what ``edge-maas head train`` does.

Features come from the service's own submodels (those that compute the boundary tensor, nothing else), the head is
trained and quantized by edge_maas.heads.train, checked (int8 vs float accuracy on a held-out part; the same bytes
from the interpreter and the native kernels), and added to the service with edge_maas.service_edit: a new
``head_TASK`` submodel reading the boundary tensor and writing ``TASK/out_0``, and a task whose golden pair holds
the service's inputs and the task's outputs through the whole service on the interpreter's built-in kernels.

A version-1 split folder is accepted: it becomes a version-2 service (its shards are the submodels, their files
unchanged) with the new task beside the model's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_maas.backends import TensorSpec
from edge_maas.errors import EdgeMaasError
from edge_maas.heads.features import Features, extract_features, service_boundary
from edge_maas.heads.train import Accuracy, Head, read_training_data, train_with_holdout
from edge_maas.manifest import Golden, TensorData
from edge_maas.service import SCHEMA_VERSION, ServiceManifest, Submodel, Task, load_any, schema_version_of
from edge_maas.service_edit import (
    add_task,
    check_new_task,
    edited_version,
    head_name,
    make_submodel,
    output_name,
    remove_task,
    with_golden,
    write_service,
)


class HeadMismatchError(EdgeMaasError):
    """The trained head gives different bytes on the interpreter and on the native kernels (nothing is written)."""


@dataclass
class ServiceTask:
    """What ``train_service_task`` did: the new manifest (written), the head, its scores and checks."""

    manifest: ServiceManifest
    path: Path  # the manifest written
    head: Head
    submodel: Submodel
    accuracy: Accuracy | None  # None with holdout 0
    checked: int  # samples on which the interpreter's and the native head's bytes were compared (all equal)
    n_samples: int
    previous_version: str
    converted_from_v1: bool


def train_service_task(
    manifest_path: str | Path,
    at: str,
    data: str | Path,
    task: str,
    hidden: int | None = None,
    version: str | None = None,
    backend: str = "litert",
    holdout: float = 0.25,
    seed: int = 0,
    replace: bool = False,
) -> ServiceTask:
    """Train a head for ``task`` on the features at tensor ``at`` of the service ``manifest_path`` (v2, or a v1
    split, converted) from ``data`` (.npz: x or one array per service input, y labels), and add it to the service
    folder: ``head_TASK.tflite`` then ``manifest.json`` (atomically, the manifest last), at ``version`` (default:
    the next one).  Everything is checked before anything is written.

    Errors: ServiceEditError (task name clash, bad version), FeatureError (``at`` unknown or a service input; the
    message lists the tensors a head can read), TrainingDataError (data of the wrong shape or dtype, missing x or y,
    labels not one per sample), HeadMismatchError (interpreter and native heads differ), ManifestError (a service
    that does not load or whose files do not match it).

    ``replace``: retrain an existing task instead (UnknownTaskError when there is none): its old head is dropped
    and the new one written in its place; the other tasks and their submodels stay as they are."""
    manifest_path = Path(manifest_path)
    service = load_any(manifest_path)
    v1 = schema_version_of(manifest_path.read_bytes()) != SCHEMA_VERSION
    sub_name = head_name(task)
    version = edited_version(service, version)
    previous = service.service.version
    if replace:
        service = remove_task(service, task, bump=False)
    check_new_task(service, task, sub_name)  # before any work: the cheapest mistakes to report
    boundary = service_boundary(service, at, manifest_path)
    plan = service.tensor_plan([at])
    read = {t.name for s in plan for t in s.inputs}
    specs = tuple(TensorSpec(t.name, t.shape, t.dtype) for t in service.inputs if t.name in read)
    x, y = read_training_data(data, specs)
    feats = extract_features(manifest_path, at, x, backend=backend)
    head, acc, held = train_with_holdout(feats, y, task, hidden, holdout, seed, backend, output_name=output_name(task))
    checked = _check_native(head, held)
    blob = head.model
    sub = make_submodel(sub_name, blob, (boundary,), (head.output,))
    golden_in = _golden_inputs(service, at, feats, x, specs)
    # The golden output is the service's own answer: build the edited service with a placeholder pair, run the
    # new task through it on the interpreter's built-in kernels, then put the pair in.
    placeholder = Golden(inputs=golden_in, outputs=())
    draft = add_task(service, sub, Task(name=task, outputs=(head.output.name,), golden=placeholder), version)
    outs = _run_task(draft, manifest_path.parent, {sub.file: blob}, task, golden_in)
    golden = Golden(inputs=golden_in, outputs=tuple(TensorData.from_array(k, v) for k, v in outs.items()))
    edited = with_golden(draft, task, golden)
    path = write_service(manifest_path.parent, edited, {sub.file: blob})
    return ServiceTask(edited, path, head, sub, acc, checked, len(y), previous, v1)


def _check_native(head: Head, features: Features) -> int:
    """Compare the head's bytes on the interpreter (built-in kernels) and the native kernels, sample by sample."""
    lit = head.run(features)
    nat = head.run(features, backend="native")
    differ = [i for i in range(len(lit)) if lit[i].tobytes() != nat[i].tobytes()]
    if differ:
        raise HeadMismatchError(f"the head for {head.task} gives different bytes on the interpreter and on the "
                                f"native kernels for {len(differ)} of {len(lit)} samples; nothing was "
                                "written")  # fmt: skip
    return len(lit)


def _golden_inputs(service: ServiceManifest, at: str, feats: Features, x, specs) -> tuple[TensorData, ...]:
    """The service inputs of the golden pair: those of an existing task that computes ``at`` (the same request
    the service's other answers are pinned to), else the first training sample."""
    needed = [s.name for s in specs]
    producer = service.producers()[at].name
    for t in service.tasks:
        if any(s.name == producer for s in service.task_plan([t.name])):
            have = {d.name: d for d in t.golden.inputs}
            if all(n in have for n in needed):
                return tuple(have[n] for n in needed)
    return tuple(TensorData.from_array(s.name, np.asarray(x[s.name][:1]).reshape(s.shape)) for s in specs)


def _run_task(manifest: ServiceManifest, directory: Path, new: dict[str, bytes], task: str,
              inputs: tuple[TensorData, ...]) -> dict[str, np.ndarray]:  # fmt: skip
    """The task's outputs through the whole (edited) service on the interpreter without delegates, the existing
    submodels read from ``directory`` (and verified), the new ones from memory."""
    from edge_maas.service_pipeline import ServicePipeline

    def read(s: Submodel) -> bytes:
        if s.file in new:
            manifest.verify_submodel(s, new[s.file])
            return new[s.file]
        return manifest.read_submodel(directory, s)

    pipe = ServicePipeline.from_reader(manifest, read, "litert", xnnpack=False)
    try:
        return pipe.run_task({d.name: d.to_array() for d in inputs}, task)
    finally:
        pipe.close()
