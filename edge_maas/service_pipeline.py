"""Run a service's tasks: the submodels a request needs, each once, on edge_maas.pipeline's backends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from edge_maas.backends import Backend, TensorSpec, check_inputs, make_backend
from edge_maas.errors import ManifestError
from edge_maas.service import ServiceManifest, Submodel, load_any


class ServicePipeline:
    """One backend per submodel, built once; a request for several tasks runs the union of their submodels,
    each once (a shared backbone once for N tasks).  ``runs`` counts how often each submodel ran."""

    def __init__(self, manifest: ServiceManifest, backends: Mapping[str, Backend], kinds: Mapping[str, str]):
        self.manifest = manifest
        self.backends = dict(backends)
        self.kinds = dict(kinds)
        self.inputs = tuple(TensorSpec(t.name, t.shape, t.dtype) for t in manifest.inputs)
        self.runs: Counter[str] = Counter()

    @classmethod
    def from_manifest(cls, path: str | Path, backend: str = "litert", **options) -> ServicePipeline:
        """Load a v2 service (or a v1 split as a one-task service); every submodel is checked against the
        manifest's size and sha256 before a backend sees it.  ManifestError, ModelFormatError."""
        path = Path(path)
        m = load_any(path)
        return cls.from_reader(m, lambda s: m.read_submodel(path.parent, s), backend, **options)

    @classmethod
    def from_reader(cls, manifest: ServiceManifest, read: Callable[[Submodel], bytes],
                    backend: str | Mapping[str, str] = "litert", **options) -> ServicePipeline:  # fmt: skip
        """Build from ``read(submodel) -> verified bytes``; ``backend`` is one name for all submodels or one per
        submodel name."""
        kinds = {s.name: backend if isinstance(backend, str) else backend.get(s.name, "litert")
                 for s in manifest.submodels}  # fmt: skip
        backends: dict[str, Backend] = {}
        try:
            for s in manifest.submodels:
                b = backends[s.name] = make_backend(kinds[s.name], read(s), **options)
                for what, declared, actual in (("inputs", s.inputs, b.inputs), ("outputs", s.outputs, b.outputs)):
                    d = sorted((t.name, tuple(t.shape), t.dtype) for t in declared)
                    a = sorted((t.name, tuple(t.shape), t.dtype) for t in actual)
                    if d != a:
                        raise ManifestError(f"submodel {s.name} {what} {a} do not match the manifest's {d}")
        except BaseException:
            for b in backends.values():
                b.close()
            raise
        return cls(manifest, backends, kinds)

    def run(self, inputs: Mapping[str, np.ndarray], tasks: Iterable[str]) -> dict[str, dict[str, np.ndarray]]:
        """Outputs by task, then by tensor name.  UnknownTaskError before anything runs; TensorMismatchError
        for missing or ill-shaped inputs."""
        names = list(dict.fromkeys(tasks))
        plan = self.manifest.task_plan(names)
        needed = {t.name for s in plan for t in s.inputs} & {t.name for t in self.inputs}
        check_inputs(tuple(s for s in self.inputs if s.name in needed), inputs)
        env: dict[str, np.ndarray] = {k: v for k, v in inputs.items() if k in needed}
        for s in plan:
            b = self.backends[s.name]
            env.update(b.run({t.name: env[t.name] for t in b.inputs}))
            self.runs[s.name] += 1
        return {n: {o: env[o] for o in self.manifest.task(n).outputs} for n in names}

    def run_task(self, inputs: Mapping[str, np.ndarray], task: str) -> dict[str, np.ndarray]:
        return self.run(inputs, [task])[task]

    def check_golden(self, tasks: Sequence[str] | None = None) -> list[str]:
        """Names of the tasks whose golden output this pipeline does not reproduce bit for bit."""
        bad = []
        for t in self.manifest.tasks:
            if tasks is not None and t.name not in tasks:
                continue
            got = self.run_task({x.name: x.to_array() for x in t.golden.inputs}, t.name)
            if any(not np.array_equal(got.get(o.name), o.to_array()) for o in t.golden.outputs):
                bad.append(t.name)
        return bad

    def close(self) -> None:
        for b in self.backends.values():
            b.close()
