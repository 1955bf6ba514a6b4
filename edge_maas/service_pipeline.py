"""Run a service's tasks: the submodels a request needs, each once, on edge_maas.pipeline's backends."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from edge_maas.backends import Backend, TensorSpec, check_inputs, make_stage_backend
from edge_maas.errors import EdgeMaasError, ManifestError, StageUnavailableError
from edge_maas.service import ServiceManifest, Submodel, load_any


class Exclusive(Backend):
    """A loaded submodel that several versions of a service may share (edge_maas.device reuses the backends of
    unchanged submodels): one run at a time, whichever version's request or health check runs it.  Native
    arenas and interpreters keep their tensors in the backend, and the native kernels release the GIL, so two
    overlapping runs would read each other's activations (a new version's golden check on the device's install
    thread while the running version serves on another).  ``backend``: the wrapped one."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.inputs, self.outputs = backend.inputs, backend.outputs
        self._lock = threading.Lock()

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            return self.backend.run(inputs)

    def batched(self, n: int) -> Backend | None:
        return self.backend.batched(n)  # a new backend of its own: nothing shared

    def close(self) -> None:
        with self._lock:  # not under a running request
            self.backend.close()

    def __getattr__(self, name: str):  # what a backend offers beyond the interface (memory, stats)
        backend = self.__dict__.get("backend")
        if backend is None:  # not built yet (copy, pickle)
            raise AttributeError(name)
        return getattr(backend, name)


class ServicePipeline:
    """One backend per submodel, built once; a request for several tasks runs the union of their submodels,
    each once (a shared backbone once for N tasks).  ``runs`` counts how often each submodel ran."""

    def __init__(self, manifest: ServiceManifest, backends: Mapping[str, Backend], kinds: Mapping[str, str]):
        self.manifest = manifest
        self.backends = dict(backends)
        self.kinds = dict(kinds)
        self.inputs = tuple(TensorSpec(t.name, t.shape, t.dtype) for t in manifest.inputs)
        self.runs: Counter[str] = Counter()
        self._plans: dict[tuple[str, ...], tuple[list[Submodel], set[str]]] = {}

    @classmethod
    def from_manifest(cls, path: str | Path, backend: str = "litert", **options) -> ServicePipeline:
        """Load a v2 service (or a v1 split as a one-task service); every submodel is checked against the
        manifest's size and sha256 before a backend sees it.  ManifestError, ModelFormatError."""
        path = Path(path)
        m = load_any(path)
        return cls.from_reader(m, lambda s: m.read_submodel(path.parent, s), backend, **options)

    @classmethod
    def from_reader(cls, manifest: ServiceManifest, read: Callable[[Submodel], bytes],
                    backend: str | Mapping[str, str] = "litert", *, local: Iterable[str] | None = None,
                    remote: Callable[[Submodel], Backend] | None = None, reuse: Mapping[str, Backend] | None = None,
                    **options) -> ServicePipeline:  # fmt: skip
        """Build from ``read(submodel) -> verified bytes``; ``backend`` is one name for all submodels or one per
        submodel name.  ``local``: names of the submodels to run here (default all); each other one gets
        ``remote(submodel)`` (a backend that runs it elsewhere), or none when ``remote`` is None (tasks needing
        it then fail).  ``reuse``: already loaded backends of this kind by sha256 (a new version of a service
        keeps its unchanged submodels loaded: nothing is read or rebuilt for them)."""
        held = {s.name for s in manifest.submodels} if local is None else set(local)
        kinds = {s.name: backend if isinstance(backend, str) else backend.get(s.name, "litert")
                 for s in manifest.submodels}  # fmt: skip
        reuse = reuse or {}
        backends: dict[str, Backend] = {}
        built: list[Backend] = []
        try:
            for s in manifest.submodels:
                if s.name not in held:
                    if remote is not None:
                        backends[s.name], kinds[s.name] = remote(s), "remote"
                    continue
                if s.sha256 in reuse:
                    backends[s.name] = reuse[s.sha256]
                    continue
                b, kinds[s.name] = make_stage_backend(kinds[s.name], read(s), f"submodel {s.name} ({s.file})", **options)
                b = backends[s.name] = Exclusive(b)
                built.append(b)
                for what, declared, actual in (("inputs", s.inputs, b.inputs), ("outputs", s.outputs, b.outputs)):
                    d = sorted((t.name, tuple(t.shape), t.dtype) for t in declared)
                    a = sorted((t.name, tuple(t.shape), t.dtype) for t in actual)
                    if d != a:
                        raise ManifestError(f"submodel {s.name} {what} {a} do not match the manifest's {d}")
        except BaseException:
            for b in built:
                b.close()
            raise
        return cls(manifest, backends, kinds)

    def by_sha256(self) -> dict[str, Backend]:
        """The backends loaded here (not remote ones), by their submodel's sha256: what a next version reuses."""
        return {s.sha256: self.backends[s.name] for s in self.manifest.submodels
                if self.kinds.get(s.name) != "remote" and s.name in self.backends}  # fmt: skip

    def runnable(self) -> list[str]:
        """The tasks every submodel of which has a backend (held here, or sent to a worker)."""
        return [t.name for t in self.manifest.tasks if all(s.name in self.backends
                                                            for s in self.manifest.task_plan([t.name]))]  # fmt: skip

    def local_tasks(self) -> list[str]:
        """The tasks that run entirely on this machine."""
        return [t for t in self.runnable()
                if all(self.kinds[s.name] != "remote" for s in self.manifest.task_plan([t]))]  # fmt: skip

    def run(self, inputs: Mapping[str, np.ndarray], tasks: Iterable[str]) -> dict[str, dict[str, np.ndarray]]:
        """Outputs by task, then by tensor name.  UnknownTaskError before anything runs; TensorMismatchError
        for missing or ill-shaped inputs."""
        names = list(dict.fromkeys(tasks))
        key = tuple(names)
        cached = self._plans.get(key)
        if cached is None:  # the manifest is immutable: plan each set of tasks once (a bounded number of sets)
            plan = self.manifest.task_plan(names)
            cached = (plan, {t.name for s in plan for t in s.inputs} & {t.name for t in self.inputs})
            if len(self._plans) < 256:
                self._plans[key] = cached
        plan, needed = cached
        check_inputs(tuple(s for s in self.inputs if s.name in needed), inputs)
        env: dict[str, np.ndarray] = {k: v for k, v in inputs.items() if k in needed}
        for s in plan:
            b = self.backends.get(s.name)
            try:
                if b is None:
                    raise StageUnavailableError("it is not held here and no worker is configured")
                out = b.run({t.name: env[t.name] for t in b.inputs})
                # only what the manifest says this submodel writes: a backend (a worker's reply) naming another
                # tensor must not overwrite an input or another submodel's output
                env.update({t.name: out[t.name] for t in s.outputs})
            except StageUnavailableError as exc:
                raise StageUnavailableError(f"task {self._using(names, s)}: stage {s.name} (submodel "
                                            f"{s.sha256[:12]}) cannot run: {exc}") from None  # fmt: skip
            except Exception as exc:  # the model's fault (not the caller's inputs, checked above): say where
                why = str(exc) if isinstance(exc, EdgeMaasError) else f"{type(exc).__name__}: {exc}"
                raise EdgeMaasError(f"{self.manifest.name}@{self.manifest.version}: task {self._using(names, s)}: "
                                    f"stage {s.name} (submodel {s.sha256[:12]}) failed: "
                                    f"{why.splitlines()[0] if why else type(exc).__name__}") from exc  # fmt: skip
            self.runs[s.name] += 1
        return {n: {o: env[o] for o in self.manifest.task(n).outputs} for n in names}

    def _using(self, names: list[str], sub: Submodel) -> str:
        """The requested tasks that need ``sub``, for error messages."""
        return ", ".join(n for n in names if any(x.name == sub.name for x in self.manifest.task_plan([n])))

    def run_task(self, inputs: Mapping[str, np.ndarray], task: str) -> dict[str, np.ndarray]:
        return self.run(inputs, [task])[task]

    def check_golden(self, tasks: Sequence[str] | None = None) -> list[str]:
        """Names of the tasks whose golden output this pipeline does not reproduce bit for bit.  Tasks whose
        golden inputs are the same (compose gives them one) are checked in one request: the backbone runs once."""
        groups: dict[tuple, list] = {}
        for t in self.manifest.tasks:
            if tasks is None or t.name in tasks:
                groups.setdefault(tuple((x.name, x.data) for x in t.golden.inputs), []).append(t)
        bad = []
        for group in groups.values():
            got = self.run({x.name: x.to_array() for x in group[0].golden.inputs}, [t.name for t in group])
            bad += [t.name for t in group
                    if any(not np.array_equal(got[t.name].get(o.name), o.to_array()) for o in t.golden.outputs)]  # fmt: skip
        return bad

    def close(self, keep: Iterable[Backend] = ()) -> None:
        """Close the backends, except those in ``keep`` (shared with a newer version)."""
        kept = {id(b) for b in keep}
        for b in self.backends.values():
            if id(b) not in kept:
                b.close()
