"""The one verified path from a manifest hash to a running pipeline, shared by devices and
workers: signature checked, every blob sha256-checked before it is cached or loaded, golden
pair reproduced byte for byte on the reference kernels, then the pipeline built on the
configured backend.

What a golden pair guarantees: the manifest's golden input, run on the kernels that made the
golden output (the interpreter's built-in kernels on x86-64, which the native executor equals
everywhere), gives exactly the golden bytes, so the shards are the signed model, cut and
assembled right.  It says nothing byte-exact about faster kernels: XNNPACK (and the
interpreter's aarch64 build) may differ by a few LSB, so they are checked only to run and give
the right shapes."""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from edge_maas.backends import NATIVE_ONLY, Backend, TensorSpec, make_stage_backend
from edge_maas.errors import BackendUnavailableError, EdgeMaasError, IntegrityError, ModelFormatError
from edge_maas.manifest import Manifest
from edge_maas.pipeline import Pipeline, Stage
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.service import ServiceManifest, Submodel, parse_document
from edge_maas.service_pipeline import ServicePipeline
from edge_maas.transport.chunks import BlobFetcher

log = logging.getLogger(__name__)

# the interpreter's built-in kernels made the golden outputs on this architecture; elsewhere
# (aarch64: ruy rounds requantization once) only the native executor reproduces them
_X86 = platform.machine().lower() in ("x86_64", "amd64")


class HealthCheckError(EdgeMaasError):
    """A version's blobs verified but it does not reproduce its golden pair (or give its declared outputs): it is
    not swapped in (counted apart from fetch failures in the device's install metrics)."""


# (sha256, bytes of it arrived so far, its size): called while a blob is fetched, from the fetching thread
FetchHook = Callable[[str, int, int], None]


class Installer:
    def __init__(self, cache: BlobStore, fetcher: BlobFetcher | None, registry_key, backend: str = "litert",
                 options: Mapping | None = None):  # fmt: skip
        self.cache = cache
        self.fetcher = fetcher  # None: offline, cache only
        self.key = registry_key
        self.backend = backend
        self.options = dict(options or {"xnnpack": False})  # golden pairs come from built-in kernels
        self.on_fetch: FetchHook | None = None  # progress of blob fetches (the device's install progress)

    def manifest(self, sha256: str, size: int) -> Manifest | ServiceManifest:
        """The manifest blob (a v1 split or a v2 service), parsed and its signatures verified."""
        manifest = parse_document(self.blob(sha256, size))
        signing.verify(manifest, self.key)
        return manifest

    def service(self, manifest: ServiceManifest, local: Iterable[str] | None = None,
                remote: Callable[[Submodel], Backend] | None = None,
                reuse: Mapping[str, Backend] | None = None) -> ServicePipeline:  # fmt: skip
        """A service's pipeline: the ``local`` submodels (names; default all) fetched unless cached or in
        ``reuse`` (loaded backends by sha256, kept as they are), the others from ``remote``.  Every task that
        runs entirely here is health-checked on its golden pair first (on the reference kernels, as for
        splits); tasks with a remote stage are checked by the worker's hash and signature checks only.
        EdgeMaasError when a blob cannot be had or a task fails its check; nothing stays loaded then."""
        held = {s.name for s in manifest.submodels} if local is None else set(local)
        reuse = dict(reuse or {})
        wanted = [s for s in manifest.submodels if s.name in held and s.sha256 not in reuse]
        blobs = {s.sha256: self.blob(s.sha256, s.size) for s in wanted}

        def read(sub: Submodel) -> bytes:
            data = blobs[sub.sha256] if sub.sha256 in blobs else self.blob(sub.sha256, sub.size)
            manifest.verify_submodel(sub, data)
            return data

        pipe = ServicePipeline.from_reader(manifest, read, self.backend, local=held, remote=remote, reuse=reuse,
                                           **self.options)  # fmt: skip
        try:
            self._check_service(manifest, pipe, read)
        except BaseException:
            pipe.close(keep=reuse.values())
            raise
        return pipe

    def _check_service(self, manifest: ServiceManifest, pipe: ServicePipeline, read) -> None:
        tasks = pipe.local_tasks()
        if self._serves_reference() and self._mixed_is_reference(pipe.kinds.values()):
            bad = pipe.check_golden(tasks)
        else:
            needed = {s.name for s in manifest.task_plan(tasks)} if tasks else set()
            ref = self._reference(manifest.name, lambda kind, **o: ServicePipeline.from_reader(
                manifest, read, kind, local=needed, **o))  # fmt: skip
            try:
                bad = ref.check_golden(tasks)
            finally:
                ref.close()
            for t in tasks:  # the serving backend must run and give the declared outputs, within a few LSB
                task = manifest.task(t)
                got = pipe.run_task({x.name: x.to_array() for x in task.golden.inputs}, t)
                for o in task.golden.outputs:
                    want = o.to_array()
                    if got[o.name].shape != want.shape or got[o.name].dtype != want.dtype:
                        bad.append(t)
        if bad:
            raise HealthCheckError(f"health check failed: task(s) {', '.join(sorted(set(bad)))} of "
                                f"{manifest.name}@{manifest.version} differ from their golden output")  # fmt: skip
        log.info("%s@%s: tasks %s pass their golden check on %s", manifest.name, manifest.version, tasks, self.backend)

    def submodel(self, manifest: ServiceManifest, sub: Submodel) -> Pipeline:
        """One submodel of a signed service as a one-stage pipeline (what a worker runs for a device that does
        not hold it): fetched unless cached, checked against the manifest's size and sha256, loaded.  No golden
        pair covers a submodel alone; its tasks' golden pairs are checked where the whole task runs."""
        data = self.blob(sub.sha256, sub.size)
        manifest.verify_submodel(sub, data)
        backend, kind = make_stage_backend(self.backend, data, f"submodel {sub.name} ({sub.file})", **self.options)
        specs = lambda ts: tuple(TensorSpec(t.name, tuple(t.shape), t.dtype) for t in ts)
        return Pipeline([Stage(0, backend, kind)], specs(sub.inputs), specs(sub.outputs))

    def pipeline(self, manifest: Manifest) -> Pipeline:
        """Fetch what is missing, health-check on the reference kernels, build on the configured
        backend.  EdgeMaasError when a blob cannot be had or the health check fails."""
        shards = {s.sha256: self.blob(s.sha256, s.size) for s in manifest.shards}
        read = self._verified_shard(manifest, shards)
        golden_in = {t.name: t.to_array() for t in manifest.golden.inputs}
        if self._serves_reference():
            pipeline = Pipeline.from_reader(manifest, read, self.backend, **self.options)
            if self._mixed_is_reference(st.kind for st in pipeline.stages):
                try:
                    self._check(pipeline.run(golden_in), manifest)
                except BaseException:
                    pipeline.close()
                    raise
                return pipeline
            pipeline.close()  # some stages fell back to an interpreter that is not the reference here
        reference = self._reference(manifest.name, lambda kind, **o: Pipeline.from_reader(manifest, read, kind, **o))
        try:
            self._check(reference.run(golden_in), manifest)
        finally:
            reference.close()
        pipeline = Pipeline.from_reader(manifest, read, self.backend, **self.options)
        out = pipeline.run(golden_in)  # it must run and give the declared outputs, within a few LSB
        for t in manifest.golden.outputs:
            want = t.to_array()
            if out[t.name].shape != want.shape or out[t.name].dtype != want.dtype:
                pipeline.close()
                got = out[t.name]
                raise HealthCheckError(f"health check failed: output {t.name!r} on {self.backend} is "
                                    f"{got.shape} {got.dtype}, not {want.shape} {want.dtype}")
            lsb = int(np.abs(out[t.name].astype(np.int64) - want.astype(np.int64)).max(initial=0))
            log.info("%s@%s: output %s on %s is within %d LSB of the golden output", manifest.model.name,
                     manifest.model.version, t.name, self.backend, lsb)  # fmt: skip
        return pipeline

    def _serves_reference(self) -> bool:
        """Whether the serving backend itself computes the golden bytes."""
        if self.backend in ("native", NATIVE_ONLY, "accel"):  # bit-exact on every instruction set
            return True
        return self.backend == "litert" and not self.options.get("xnnpack", True) and _X86

    @staticmethod
    def _mixed_is_reference(kinds) -> bool:
        """Whether stages that backend "native" ran on the interpreter (an op native lacks) still give the
        golden bytes: the built-in kernels do on x86-64 only."""
        return _X86 or all(k != "litert" for k in kinds)

    @staticmethod
    def _reference(name: str, build):
        """What the golden pair is checked on: ``build(kind, **options)`` on native, or on the built-in
        kernels where native cannot load a shard (an op it lacks) and they are the reference (x86-64)."""
        try:
            return build(NATIVE_ONLY, threads=1)  # strictly native: a stage on this interpreter proves nothing
        except (ModelFormatError, BackendUnavailableError) as exc:  # an op or option native lacks
            if not _X86:
                raise EdgeMaasError(f"health check impossible here: native cannot run it ({exc}) and this "
                                    f"interpreter build is not the golden reference") from None  # fmt: skip
            log.info("%s: checking on the built-in kernels (native: %s)", name, exc)
            return build("litert", xnnpack=False, threads=1)

    @staticmethod
    def _check(out: Mapping[str, np.ndarray], manifest: Manifest) -> None:
        for t in manifest.golden.outputs:
            if not np.array_equal(out[t.name], t.to_array()):
                raise HealthCheckError(f"health check failed: output {t.name!r} differs from the golden output")

    def blob(self, sha256: str, size: int) -> bytes:
        """From the cache, or fetched (verified by the fetcher) and then cached.  A cached copy
        that no longer matches its hash is discarded by the cache and fetched again."""
        try:
            data = self.cache.get(sha256)
        except IntegrityError as exc:
            if self.fetcher is None:
                raise
            log.warning("%s; fetching it again", exc)
            data = None
        if data is None:
            if self.fetcher is None:
                raise IntegrityError(f"blob {sha256[:12]} is not in the cache")
            hook = self.on_fetch
            progress = None if hook is None else lambda got, n: hook(sha256, size * got // n, size)  # chunks -> bytes
            data = self.fetcher.fetch(sha256, size, progress=progress)
            self.cache.put(data)
        return data

    @staticmethod
    def _verified_shard(manifest: Manifest, shards: Mapping[str, bytes]):
        def read(shard):
            data = shards[shard.sha256]
            manifest.verify_shard(shard, data)
            return data

        return read
