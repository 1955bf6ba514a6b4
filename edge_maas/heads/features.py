"""Run a backbone on a batch of inputs and keep the int8 tensor at one named boundary (the features a head reads).

The backbone is a whole ``.tflite`` (cut right after the op that writes the boundary, with the split machinery:
the same prefix ``edge-maas split --at TENSOR`` would ship) or a ``manifest.json``: a service's (schema 2; the
boundary is a submodel output, e.g. ``backbone/out_0``, and only the submodels that compute it run) or a split
model's (the boundary is a tensor that crosses a cut: a shard output).  Either way the features are what the
device will feed the head: the int8 bytes of the chosen backend, with the boundary's own scale and zero point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_maas.backends import TensorSpec, make_backend
from edge_maas.errors import EdgeMaasError, PartitionError
from edge_maas.manifest import TensorDesc
from edge_maas.partition.plan import plan_at_tensors
from edge_maas.partition.split import tensor_desc
from edge_maas.pipeline import Stage
from edge_maas.service import ServiceManifest, load_any
from edge_maas.tflite.graph import load_graph
from edge_maas.tflite.writer import build_submodel

CHUNK = 256  # samples per backend call: batches are padded to a power of two, so this bounds the sizes built


class FeatureError(EdgeMaasError):
    """Backbone inputs or a boundary tensor that cannot give features (unknown tensor, wrong shape or dtype, ...)."""


@dataclass(frozen=True)
class Features:
    """int8 features of n samples: ``values`` has shape (n, *boundary.shape[1:])."""

    boundary: TensorDesc  # name, per-sample shape (leading 1), dtype, scale, zero point
    values: np.ndarray

    @property
    def scale(self) -> float:
        return float(self.boundary.scale[0])

    @property
    def zero_point(self) -> int:
        return int(self.boundary.zero_point[0])

    def dequantize(self) -> np.ndarray:
        """float32 (n, D): real = scale * (q - zero_point), each sample flattened."""
        q = self.values.reshape(len(self.values), -1).astype(np.float32)
        return (q - np.float32(self.zero_point)) * np.float32(self.scale)


def extract_features(
    backbone: str | Path,
    at: str,
    inputs: np.ndarray | Mapping[str, np.ndarray],
    backend: str = "litert",
    **backend_options,
) -> Features:
    """Run ``backbone`` (a .tflite, or a service's or split's manifest.json) on n samples and return the features
    at tensor ``at``.

    ``inputs``: one array (single-input backbones) or arrays by input name, each (n, *shape[1:]) of the input's
    dtype (a per-sample leading 1 is accepted too).  The interpreter runs without XNNPACK unless told otherwise, so
    the features are the bytes every exact backend gives.  Errors: FeatureError (unknown or unusable boundary,
    inputs of the wrong shape, dtype or count), ModelFormatError/ManifestError (unreadable backbone)."""
    path = Path(backbone)
    if backend == "litert":
        backend_options.setdefault("xnnpack", False)
    if path.suffix == ".json":
        stages, specs, boundary = _manifest_prefix(path, at, backend, backend_options)
    else:
        stages, specs, boundary = _tflite_prefix(path, at, backend, backend_options)
    try:
        feed, n = check_batch(specs, inputs)
        out = []
        for lo in range(0, n, CHUNK):
            env = {k: v[lo : lo + CHUNK] for k, v in feed.items()}
            m = min(CHUNK, n - lo)
            for st in stages:
                env.update(st.run_batch({s.name: env[s.name] for s in st.backend.inputs}, m))
            out.append(env[boundary.name])
    finally:
        for st in stages:
            st.backend.close()
    values = np.concatenate(out)
    return Features(boundary, values)


def _tflite_prefix(path: Path, at: str, backend: str, options: dict):
    graph = load_graph(path)
    try:
        plan = plan_at_tensors(graph, [at])
    except PartitionError as exc:
        raise FeatureError(f"cannot take features at {at!r}: {exc}") from None
    t = graph.by_name[at]
    boundary = _check_boundary(tensor_desc(t))
    first = plan.shards[0]
    # Only the boundary as output: the prefix computes exactly what the split's first shard computes.
    blob = build_submodel(graph, first.ops, first.inputs, (t.index,), description=f"edge_maas features at {at}")
    stage = Stage(0, make_backend(backend, blob, **options), backend)
    return [stage], tuple(stage.backend.inputs), boundary


def service_boundary(service: ServiceManifest, at: str, where: str | Path = "the service") -> TensorDesc:
    """The submodel output named ``at``, checked for a head to read.  FeatureError for a service input (a head
    reads features a submodel computes) or an unknown name, listing the tensors a head can read."""
    outputs = [t.name for s in service.submodels for t in s.outputs]
    if at in {t.name for t in service.inputs}:
        raise FeatureError(f"{at!r} is an input of {where}, not features; a head reads a submodel's output: "
                           f"{', '.join(map(repr, outputs))}")  # fmt: skip
    if at not in outputs:
        raise FeatureError(f"no boundary tensor named {at!r} in {where}; its submodels output: "
                           f"{', '.join(map(repr, outputs))}")  # fmt: skip
    return _check_boundary(service.tensor(at))


def _manifest_prefix(path: Path, at: str, backend: str, options: dict):
    """The submodels that compute ``at``, in order: a v2 service's, or a v1 split's shards (as a one-task
    service: same tensor names)."""
    service = load_any(path)
    boundary = service_boundary(service, at, path)
    plan = service.tensor_plan([at])
    stages = []
    try:
        for k, s in enumerate(plan):
            stages.append(Stage(k, make_backend(backend, service.read_submodel(path.parent, s), **options), backend))
    except BaseException:
        for st in stages:
            st.backend.close()
        raise
    read = {t.name for s in plan for t in s.inputs}
    specs = tuple(TensorSpec(i.name, i.shape, i.dtype) for i in service.inputs if i.name in read)
    return stages, specs, boundary


def _check_boundary(t: TensorDesc) -> TensorDesc:
    if t.dtype != "int8" or len(t.scale) != 1 or len(t.zero_point) != 1:
        raise FeatureError(f"boundary {t.name!r} is {t.dtype} with {len(t.scale)} scales; a head needs an int8 "
                           "tensor quantized per tensor")  # fmt: skip
    if not t.shape or t.shape[0] != 1:
        raise FeatureError(f"boundary {t.name!r} has shape {list(t.shape)}; a head needs a leading batch of 1")
    if t.scale[0] <= 0:
        raise FeatureError(f"boundary {t.name!r} has scale {t.scale[0]}; it must be positive")
    return t


def check_batch(specs: tuple[TensorSpec, ...], inputs) -> tuple[dict[str, np.ndarray], int]:
    """Arrays by input name, each (n, *shape[1:]); n is the same for all and at least 1.  FeatureError
    (missing input, wrong shape, dtype or count)."""
    if isinstance(inputs, np.ndarray):
        if len(specs) != 1:
            raise FeatureError(f"the backbone has {len(specs)} inputs ({', '.join(s.name for s in specs)}); "
                               "pass the arrays by name")  # fmt: skip
        inputs = {specs[0].name: inputs}
    if not isinstance(inputs, Mapping):
        raise FeatureError(f"backbone inputs must be a numpy array or arrays by name, not {type(inputs).__name__}")
    feed, sizes = {}, set()
    for s in specs:
        if s.name not in inputs:
            raise FeatureError(f"missing backbone input {s.name!r}")
        a = np.asarray(inputs[s.name])
        per = s.shape[1:]
        if a.ndim == len(s.shape) + 1 and a.shape[1:] == s.shape:  # (n, 1, ...): a leading 1 per sample
            a = a.reshape(len(a), *per)
        if a.ndim == 0 or a.shape[1:] != per or not s.shape or s.shape[0] != 1:
            raise FeatureError(f"backbone input {s.name!r}: got shape {list(a.shape)}, expected (n, "
                               f"{', '.join(map(str, per))}) for an input of shape {list(s.shape)}")  # fmt: skip
        if a.dtype != np.dtype(s.dtype):
            raise FeatureError(f"backbone input {s.name!r} is {a.dtype}; expected {s.dtype} (quantize it with the "
                               "input's scale and zero point)")  # fmt: skip
        if len(a) == 0:
            raise FeatureError(f"backbone input {s.name!r} holds no samples")
        feed[s.name] = np.ascontiguousarray(a)
        sizes.add(len(a))
    if len(sizes) != 1:
        raise FeatureError(f"backbone inputs hold different numbers of samples: {sorted(sizes)}")
    return feed, sizes.pop()
