"""The device agent: follows its retained desired state, fetches only the blobs its cache
lacks, verifies signature and hashes before anything is cached or loaded, health-checks
the new version on its golden pair, swaps atomically, reports (retained).

Network callbacks only enqueue; a worker thread does the fetching (the fetch itself
needs the network thread to deliver chunks)."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ValidationError

from edge_maas.backends.remote import RemoteSubmodel, offload_requester
from edge_maas.config import OffloadSettings, RolloutSettings
from edge_maas.device.holding import hold_plan
from edge_maas.device.install import HealthCheckError, Installer
from edge_maas.device.metrics import DeviceMetrics
from edge_maas.device.offloader import Offloader, WorkerBoard
from edge_maas.errors import (
    EdgeMaasError,
    IntegrityError,
    StageUnavailableError,
    TensorMismatchError,
    TransportError,
)
from edge_maas.files import atomic_write
from edge_maas.manifest import Manifest
from edge_maas.pipeline import Pipeline
from edge_maas.registry.blobs import BlobStore
from edge_maas.service import ServiceManifest, Submodel, UnknownTaskError, flatten_outputs
from edge_maas.service_pipeline import ServicePipeline
from edge_maas.transport import topics
from edge_maas.transport.chunks import BlobFetcher
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import (
    AutoRollback,
    DesiredState,
    InferReply,
    InferRequest,
    ReportedState,
    RetryState,
    ServiceState,
    UpdateState,
    decode,
    encode,
    pack_tensors,
    unpack_tensors,
)
from edge_maas.trust.desired import DesiredGate
from edge_maas.trust.root import TrustedRoot, TrustError
from edge_maas.trust.updater import RootUpdater

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Active:
    """A version ready to serve: a split model (Pipeline, maybe with an Offloader) or a service
    (ServicePipeline, with RemoteSubmodel backends for the submodels this device does not hold)."""

    manifest: Manifest | ServiceManifest
    pipeline: Pipeline | ServicePipeline
    offloader: Offloader | None = None  # when the profile enables offload (split models)
    desired: DesiredState | None = None  # what it was installed from: persisted, and how it is recognised

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def service(self) -> ServicePipeline | None:
        return self.pipeline if isinstance(self.pipeline, ServicePipeline) else None

    def held(self) -> tuple[str, ...]:
        """sha256 of every blob this version runs from here (shards, or the submodels it holds)."""
        if self.service is not None:
            return tuple(self.service.by_sha256())
        return tuple(s.sha256 for s in self.manifest.shards)


@dataclass
class _Probation:
    """A freshly swapped-in version's first requests, counted until it passes or is rolled back."""

    active: Active
    requests: int = 0
    failures: int = 0
    last_error: str = ""


class _Rejected(BaseModel):
    """rejected.json: the version rolled back from by itself, kept across restarts."""

    desired: DesiredState
    report: AutoRollback


def _same(a: DesiredState, b: DesiredState) -> bool:
    return (a.model, a.version, a.manifest_sha256) == (b.model, b.version, b.manifest_sha256)


class DeviceAgent:
    def __init__(self, device_id: str, client: MqttClient, cache: BlobStore, registry_key, *,
                 backend: str = "litert", backend_options: Mapping | None = None, chunk_size: int | None = None,
                 cache_budget: int | None = None, offload: OffloadSettings | None = None,
                 allow_rollback: bool = True, rollout: RolloutSettings | None = None,
                 hold_budget: int | None = None, labels: Mapping[str, str] | None = None,
                 groups: tuple[str, ...] | list[str] = (), report_every_s: float = 10.0,
                 metrics_port: int | None = None, metrics_host: str = "127.0.0.1"):  # fmt: skip
        """``registry_key``: the trusted root (edge_maas.trust.TrustedRoot) or a bare Ed25519 public key.
        ``hold_budget``: bytes of a service's submodels to hold (edge_maas.device.holding); None: all.
        ``labels``/``groups``: reported as they are, so the registry knows the fleet (rollouts target groups).
        ``report_every_s``: seconds between republishing the reported state while its request counters change.
        ``metrics_port``: serve Prometheus metrics (device/metrics.py) on ``metrics_host:metrics_port`` (0: any free
        port; ``metrics.port`` is then the one bound); None: not served.  TransportError when it cannot be bound."""
        self.device_id = device_id
        self.client = client
        self.cache = cache
        self.key = registry_key = TrustedRoot.coerce(registry_key)
        self.gate = DesiredGate(device_id, registry_key, cache.root / "trust_state.json", allow_rollback)
        self.roots = RootUpdater(registry_key)
        self._last_desired: bytes | None = None  # re-checked when a newer root arrives
        self.backend = backend
        self.options = dict(backend_options or {"xnnpack": False})  # golden pairs come from built-in kernels
        self.fetcher = BlobFetcher(client, chunk_size=chunk_size)
        self.installer = Installer(cache, self.fetcher, registry_key, backend, self.options)
        self.cache_budget = cache_budget
        self.active: Active | None = None
        self.previous: Active | None = None
        self.metrics = DeviceMetrics(device_id, self)  # counted always (cheap); served only when asked
        if metrics_port is not None:  # bound before anything starts: a port in use fails first
            self.metrics.serve(metrics_port, metrics_host)
        self.last_error: str | None = None
        self.healthy: bool | None = None
        self.rollout = rollout or RolloutSettings()
        self.retrying: RetryState | None = None  # a fetch that failed and is tried again
        self.auto_rollback: AutoRollback | None = None
        self.update: UpdateState | None = None  # what became of the newest desired state acted on
        self.labels, self.groups = dict(labels or {}), tuple(groups)
        self._probation: _Probation | None = None
        self._rejected: DesiredState | None = None  # rolled back from by itself: not re-applied
        self._closed = False  # after shutdown() nothing reports "online" again
        self._state_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._report_lock = threading.Lock()
        self._queue: queue.Queue[DesiredState | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name=f"agent-{device_id}", daemon=True)
        self._worker.start()
        # infer requests are served off the network thread: an offloaded stage waits for a reply
        # that the network thread itself must deliver
        self._infer_q: queue.Queue[tuple[InferRequest, bytes] | None] = queue.Queue()
        self._server = threading.Thread(target=self._serve, name=f"infer-{device_id}", daemon=True)
        self._server.start()
        self.offload = offload if offload is not None and offload.enabled else None
        self._offload_settings = offload or OffloadSettings()  # deadline and codec of remote submodels too
        self.hold_budget = hold_budget
        self._requester = offload_requester(client) if self.offload is not None else None
        self._board = WorkerBoard(client) if self.offload is not None else None
        self.served = 0
        self.failed = 0
        self._state_file = cache.root / "state.json"
        self._manifest_blobs: list[str] = []
        self._rejected_file = cache.root / "rejected.json"
        self._restore()
        client.subscribe(topics.trust_root("+"), self._on_root)
        client.subscribe(topics.desired(device_id), self._on_desired)
        client.subscribe(topics.infer_request(device_id), self._on_infer, qos=0)
        # a broker restart without persistence forgets the retained state, and a cut link leaves the
        # last will's "offline": say it again on every reconnect
        client.add_connect_hook(self._report)
        self._reported_counts: tuple = ()  # served, failed and offload counters as last reported
        self._report()
        # counters change with every request, not worth a report each: republish them on a timer while they move
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, args=(report_every_s,), name=f"report-{device_id}",
                                        daemon=True)  # fmt: skip
        self._ticker.start()

    # -- serving ---------------------------------------------------------------------------
    def infer(self, inputs: Mapping[str, np.ndarray], tasks: tuple[str, ...] | list[str] = (),
              active: Active | None = None) -> dict[str, np.ndarray]:  # fmt: skip
        """Run the active version.  The reference is read once: a swap never mixes versions.  ``active``: a snapshot
        of ``self.active`` to run instead (the HTTP API reads it once, to say which version answered).

        ``tasks``: the service's tasks to answer, each submodel they need run once; outputs are then keyed
        ``TASK/TENSOR``.  None named: the only task of a one-task service (or a split model), outputs under
        their own names.  UnknownTaskError for a task the service lacks (or none named where it has several),
        StageUnavailableError (naming task and stage) when a submodel is neither held nor run by a worker."""
        active = active or self.active
        t0, ok = time.perf_counter(), False
        try:  # counted here and in _answer (MQTT): the HTTP API and the Python API come through here, once each
            if active is None:
                raise EdgeMaasError(f"device {self.device_id} has no model yet")
            out = self._run(active, inputs, tuple(tasks))
            ok = True
            return out
        finally:
            self._record(active, tuple(tasks), ok, time.perf_counter() - t0)

    def _record(self, active: Active | None, tasks: tuple[str, ...], ok: bool, seconds: float) -> None:
        """One answered request, however it came (MQTT, HTTP, Python), in the metrics and in the reported counters
        (`registry status`), so the two agree; callers bump them from their own threads."""
        self.metrics.request(active, tasks, ok, seconds)
        self._count(served=int(ok), failed=int(not ok))

    def _count(self, served: int = 0, failed: int = 0) -> None:
        with self._counts_lock:
            self.served += served
            self.failed += failed

    def _run(self, active: Active, inputs: Mapping[str, np.ndarray], tasks: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """EdgeMaasError for any failure (the caller's or the model's); a version on probation has
        its failures counted (not the caller's wrong inputs, nor a worker being away)."""
        # a pipeline's backends reuse their buffers (native arenas, interpreters): one run at a
        # time, whether the request came over MQTT or through infer()
        error: Exception | None = None
        replanned = False
        with self._run_lock:
            try:
                if active.service is not None:
                    out = _run_service(active, inputs, tasks)
                elif tasks and tasks != (active.name,):
                    raise UnknownTaskError(f"{active.name}@{active.version} is a split model: its only task is "
                                           f"{active.name!r}, not {', '.join(tasks)}")  # fmt: skip
                elif active.offloader is None:
                    out = active.pipeline.run(inputs)
                else:
                    t0, local0 = time.perf_counter(), self.metrics.local_s
                    out, where, replanned = active.offloader.run(inputs)
                    remote_s = time.perf_counter() - t0 - (self.metrics.local_s - local0)  # the exchange alone
                    self.metrics.offload(where, active.offloader.last.split, len(active.pipeline.stages), remote_s)
                if tasks and active.service is None:
                    out = flatten_outputs({active.name: out})
            except (TensorMismatchError, UnknownTaskError, StageUnavailableError):
                raise  # the caller's inputs, or a worker away: not the version's fault
            except Exception as exc:  # the interpreter raises RuntimeError (e.g. an index out of bounds)
                error = exc
        self._judge(active, error)
        if error is not None:
            if isinstance(error, EdgeMaasError):
                raise error
            raise EdgeMaasError(f"{active.name}@{active.version} failed: {type(error).__name__}: "
                                f"{str(error).splitlines()[0] if str(error) else ''}") from error  # fmt: skip
        if replanned:
            self._report()
        return out

    def _judge(self, active: Active, error: Exception | None) -> None:
        """Count a request of a version on probation; roll back once max_failures have failed."""
        p = self._probation
        if p is None or p.active is not active:
            return
        r = self.rollout
        with self._lock:
            if self._probation is not p:
                return
            p.requests += 1
            if error is not None:
                p.failures += 1
                p.last_error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            failed = p.failures >= r.max_failures
            if failed or p.requests >= r.probation_requests:
                self._probation = None
        if failed:
            why = f"{p.failures} of its first {p.requests} requests failed (threshold {r.max_failures} in "
            self._auto_rollback(active, why + f"{r.probation_requests}); last: {p.last_error}")
        elif self._probation is None:
            log.info("%s: %s passed probation (%d failures in %d requests)", self.device_id, active.version,
                     p.failures, p.requests)  # fmt: skip

    def _auto_rollback(self, bad: Active, reason: str) -> None:
        """Back to the previous version (still loaded), persisted; the failed one is remembered as
        rejected, so the retained desired state does not bring it back."""
        with self._lock:
            good = self.previous
            if self.active is not bad or good is None:
                return
            self.previous, self.active = None, good
            self._rejected = bad.desired
            self.auto_rollback = AutoRollback(model=bad.name, version=bad.version,
                                              to_version=good.version, reason=reason)  # fmt: skip
            self.healthy, self.last_error = True, f"rolled back from {bad.version} by itself: {reason}"
            if good.desired is not None:
                self._manifest_blobs = [good.desired.manifest_sha256]
        self.metrics.install_result("rolled_back")
        log.error("%s: %s", self.device_id, self.last_error)
        self._persist()
        if bad.desired is not None:
            record = _Rejected(desired=bad.desired, report=self.auto_rollback)
            atomic_write(self._rejected_file, record.model_dump_json().encode())
        self._report()

    def _on_infer(self, topic: str, payload: bytes) -> None:
        """infer over MQTT: framed request in, framed reply out; every failure is answered."""
        try:
            req, body = decode(payload, InferRequest)
        except EdgeMaasError as exc:
            self._count(failed=1)
            self.metrics.error("malformed")
            log.warning("%s: dropped a malformed infer request: %s", self.device_id, exc)
            return
        self._infer_q.put((req, body))

    def _serve(self) -> None:
        while (item := self._infer_q.get()) is not None:
            req, body = item
            try:
                self._answer(req, body)
            except Exception:  # a bug must not stop serving
                log.exception("%s: failed answering infer %s", self.device_id, req.corr)

    def _answer(self, req: InferRequest, body: bytes) -> None:
        active = self.active
        t0, ok = time.perf_counter(), False
        try:
            if active is None:
                raise EdgeMaasError("no model deployed yet")
            outputs = self._run(active, unpack_tensors(req.inputs, body), req.tasks)
            metas, out_body = pack_tensors(outputs)
            reply = encode(InferReply(corr=req.corr, version=active.version, outputs=metas), out_body)
            ok = True
        except EdgeMaasError as exc:
            reply = encode(InferReply(corr=req.corr, version=active.version if active else None, error=str(exc)))
        if too_large := self.client.oversize(req.reply_to, reply, qos=0):  # an error naming the limit, not a timeout
            ok = False  # only outputs can be this large
            self.metrics.error("reply_too_large")
            reply = encode(InferReply(corr=req.corr, version=active.version if active else None,
                                      error=f"reply of {too_large}"))
        self._record(active, tuple(req.tasks), ok, time.perf_counter() - t0)
        self.client.publish(req.reply_to, reply, qos=0)

    def close(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._infer_q.put(None)
        self._worker.join(timeout=10)
        self._server.join(timeout=10)
        self.metrics.close()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """A clean stop: close(), then publish the retained state as "offline" and wait (up to
        timeout seconds) until the broker acknowledged it; a clean DISCONNECT sends no last will.
        True when the broker has it."""
        self.close()
        with self._report_lock:
            self._closed = True
            if not self.client.connected:  # the broker saw the link drop and sent the last will
                return False
            info = self.client.publish(topics.reported(self.device_id), self._state("offline"), retain=True)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):  # not queued: the connection went meanwhile
            return False
        return info.is_published()

    # -- desired state -----------------------------------------------------------------------
    def _on_desired(self, topic: str, payload: bytes) -> None:
        if not payload:  # retained message cleared
            return
        self._last_desired = payload
        try:
            self._queue.put(self.gate.check(payload))
        except TrustError as exc:
            self._fail(f"refused desired state: {exc}")

    def _on_root(self, topic: str, payload: bytes) -> None:
        """A root version (retained): chain to it (TUF 5.3), then re-check the desired state,
        which may be signed by a key only the new root trusts."""
        try:
            applied = self.roots.offer(payload)
        except TrustError as exc:
            self._fail(f"refused root metadata on {topic}: {exc}")
            return
        if applied:
            log.info("%s: trusted root v%d", self.device_id, self.key.version)
            if self._last_desired is not None:
                self._on_desired(topic, self._last_desired)

    def _work(self) -> None:
        item = self._queue.get()
        while item is not None:
            item = self._follow(item)

    def _follow(self, desired: DesiredState) -> DesiredState | None:
        """Apply desired; a failed fetch (TransportError: registry down, link cut) is tried again
        with capped exponential backoff and jitter until it succeeds.  Returns the next queue
        item: a newer desired state pre-empts the wait, None stops."""
        attempt = 0
        while True:
            try:
                self._apply(desired)
            except TransportError as exc:
                attempt += 1
                r = self.rollout
                delay = min(r.retry_max_s, r.retry_initial_s * 2 ** min(attempt - 1, 30)) * random.uniform(0.5, 1.0)
                self.retrying = RetryState(model=desired.model, version=desired.version, attempt=attempt,
                                           next_in_s=round(delay, 3), reason=str(exc))  # fmt: skip
                self.metrics.install_result("fetch_failed")
                self._set_update(desired, "retrying", str(exc), report=False)  # _fail reports
                self._fail(f"{desired.model}@{desired.version}: {exc}; retry {attempt} in {delay:.1f} s")
                try:
                    return self._queue.get(timeout=delay)
                except queue.Empty:
                    continue
            except EdgeMaasError as exc:
                self.retrying = None
                self.metrics.install_result("health_check_failed" if isinstance(exc, HealthCheckError) else "failed")
                self._set_update(desired, "failed", str(exc), report=False)
                self._fail(f"{desired.model}@{desired.version}: {exc}")
            except Exception as exc:  # the daemon keeps serving the version it has
                self.retrying = None
                log.exception("unexpected failure applying %s@%s", desired.model, desired.version)
                self.metrics.install_result("failed")
                self._set_update(desired, "failed", f"{type(exc).__name__}: {exc}", report=False)
                self._fail(f"{desired.model}@{desired.version}: {type(exc).__name__}: {exc}")
            if self.retrying is not None:  # done (or it was already running): stop saying "retrying"
                self.retrying = None
                self._report()
            return self._queue.get()

    def _apply(self, desired: DesiredState) -> None:
        if self._rejected is not None:
            if _same(desired, self._rejected):  # e.g. the retained desired state, redelivered on reconnect
                log.info("%s: not re-applying %s@%s, rolled back from", self.device_id, desired.model, desired.version)
                self._set_update(desired, "skipped", self.auto_rollback.reason if self.auto_rollback else None)
                return
            self._forget_rejected()
        if self.active and self.active.name == desired.model and self.active.version == desired.version:
            self._set_update(desired, "installed")  # a rollout asking for what runs already is answered too
            return
        self._set_update(desired, "installing")
        self.metrics.install_started()
        manifest = self.installer.manifest(desired.manifest_sha256, desired.manifest_size)
        if (manifest.name, manifest.version) != (desired.model, desired.version):
            raise IntegrityError(f"manifest is {manifest.name}@{manifest.version}, not the desired one")
        if manifest.release != desired.release:
            raise IntegrityError(f"manifest is release {manifest.release}; the desired state says {desired.release}")
        self.installer.on_fetch = self.metrics.fetch_progress(self._to_fetch(manifest),
                                                              lambda share: self._progress(desired, share))  # fmt: skip
        try:
            pipeline = self._install(self.installer, manifest, desired)
        except EdgeMaasError as exc:
            kept = self.active.version if self.active else "no version"
            # a blob that could not be had yet (registry away, link cut) is retried by _follow: keep its class (and
            # a failed health check's, counted apart)
            kind = next((k for k in (TransportError, HealthCheckError) if isinstance(exc, k)), EdgeMaasError)
            raise kind(f"{exc}; kept {kept}") from None
        finally:
            self.installer.on_fetch = None
        active = self._active(manifest, desired, pipeline)
        with self._lock:
            self.previous, self.active = self.active, active
            self.healthy, self.last_error = True, None
            self.retrying = None
            self.update = UpdateState(model=desired.model, version=desired.version, seq=desired.seq, state="installed")
            self._manifest_blobs = [desired.manifest_sha256, *self._manifest_blobs[:1]]  # active, previous
            on_probation = self.rollout.probation_requests > 0 and self.previous is not None
            self._probation = _Probation(active) if on_probation else None
        self.metrics.install_result("installed")
        self._persist()
        self.gate.accept(desired)
        self._evict()
        log.info("%s: now running %s@%s", self.device_id, desired.model, desired.version)
        self._report()

    def _to_fetch(self, manifest: Manifest | ServiceManifest) -> dict[str, int]:
        """sha256 -> size of the blobs an install of ``manifest`` will fetch (needed here, not in the cache)."""
        if isinstance(manifest, ServiceManifest):
            local = hold_plan(manifest, self.hold_budget)
            blobs = [(s.sha256, s.size) for s in manifest.submodels if s.name in local]
        else:
            blobs = [(s.sha256, s.size) for s in manifest.shards]
        return {sha: size for sha, size in blobs if not self.cache.has(sha)}

    def _progress(self, desired: DesiredState, share: float) -> None:
        """Report the install's fetch progress (called at a bounded rate by the metrics' FetchProgress)."""
        u = self.update
        if u is not None and u.seq == desired.seq and u.state == "installing":
            self.update = u.model_copy(update={"progress": share})
            self._report()

    def _install(self, installer: Installer, manifest: Manifest | ServiceManifest,
                 desired: DesiredState) -> Pipeline | ServicePipeline:  # fmt: skip
        """A split model's pipeline, or a service's: the submodels within the hold budget (those the running
        and previous versions already have loaded are reused as they are: only new submodels are fetched and
        loaded), the others run by workers."""
        if not isinstance(manifest, ServiceManifest):
            return installer.pipeline(manifest)
        local = hold_plan(manifest, self.hold_budget)
        reuse: dict = {}
        for a in (self.previous, self.active):
            if a is not None and a.service is not None:
                reuse.update(a.service.by_sha256())
        remote = None
        if len(local) < len(manifest.submodels):
            remote = self._remote_submodel(manifest, (desired.manifest_sha256, desired.manifest_size))
            log.info("%s: %s@%s: holding %s; on workers: %s", self.device_id, manifest.name, manifest.version,
                     sorted(local), sorted(s.name for s in manifest.submodels if s.name not in local))  # fmt: skip
        return installer.service(manifest, local, remote, reuse)

    def _remote_submodel(self, manifest: ServiceManifest, blob: tuple[str, int]):
        """A factory of backends that run a submodel this device does not hold on a worker."""
        if self._requester is None:
            self._requester, self._board = offload_requester(self.client), WorkerBoard(self.client)
        s = self._offload_settings

        def make(sub: Submodel) -> RemoteSubmodel:
            return RemoteSubmodel(self.client, self._requester, manifest.name, blob, sub, s.deadline_ms / 1e3,
                                  s.codec, workers_online=self._board.any_online)  # fmt: skip

        return make

    def _active(self, manifest: Manifest | ServiceManifest, desired: DesiredState,
                pipeline: Pipeline | ServicePipeline) -> Active:  # fmt: skip
        """The version ready to serve; with offload, its planner profiled on the golden input."""
        if self.offload is None or isinstance(manifest, ServiceManifest):
            active = Active(manifest, pipeline, desired=desired)
        else:
            blob = (desired.manifest_sha256, desired.manifest_size)
            offloader = Offloader(self.client, self._requester, self._board, manifest, blob, pipeline, self.offload)
            log.info("%s: offload planner for %s@%s: local stages %s ms", self.device_id, desired.model,
                     desired.version, [round(t * 1e3, 2) for t in offloader.planner.est.local_stage_s])  # fmt: skip
            active = Active(manifest, pipeline, offloader, desired)
        self.metrics.instrument(active)  # after the health check and the planner's profiling: requests only
        return active

    def _evict(self) -> None:
        """Keep the cache within budget; what the active and previous versions need stays."""
        if self.cache_budget is None:
            return
        keep = set()
        for a in (self.active, self.previous):
            if a is not None:
                keep.update(a.held())
        keep.update(self._manifest_blobs)
        self.cache.evict(self.cache_budget, keep)

    def _persist(self) -> None:
        """Record the version running now (temp file, fsync, rename): a restart resumes from it.
        Read under the lock, not passed in: an install and an automatic rollback may race here."""
        with self._state_lock:
            a = self.active
            if a is not None and a.desired is not None:
                atomic_write(self._state_file, a.desired.model_dump_json().encode())

    def _forget_rejected(self) -> None:
        """A different desired state arrived: the version rolled back from may be tried again."""
        with self._lock:
            self._rejected, self.auto_rollback = None, None
        self._rejected_file.unlink(missing_ok=True)
        self._report()

    def _restore(self) -> None:
        """Load the last good version from the cache, re-verifying everything; no network.  What
        the cache lost (a corrupt blob is discarded) is fetched once the network is there."""
        try:
            record = _Rejected.model_validate_json(self._rejected_file.read_bytes())
            self._rejected, self.auto_rollback = record.desired, record.report
        except (OSError, ValidationError):
            pass
        try:
            desired = DesiredState.model_validate_json(self._state_file.read_bytes())
        except (OSError, ValidationError):
            return
        try:
            offline = Installer(self.cache, None, self.key, self.backend, self.options)
            manifest = offline.manifest(desired.manifest_sha256, desired.manifest_size)
            pipeline = self._install(offline, manifest, desired)
            self.active, self.healthy = self._active(manifest, desired, pipeline), True
            self._manifest_blobs = [desired.manifest_sha256]
            log.info("%s: restored %s@%s from the cache", self.device_id, desired.model, desired.version)
        except EdgeMaasError as exc:
            self.last_error = f"could not restore {desired.model}@{desired.version}: {exc}"
            log.error("%s: %s; fetching it again", self.device_id, self.last_error)
            self._queue.put(desired)  # the worker heals it from the registry (retrying while it is away)

    def _set_update(self, desired: DesiredState, state: str, error: str | None = None, report: bool = True) -> None:
        """Record what became of ``desired`` (reported as ``update``); a report only when it changed."""
        u = UpdateState(model=desired.model, version=desired.version, seq=desired.seq, state=state, error=error)
        if u == self.update:
            return
        self.update = u
        if report:
            self._report()

    def _counts(self) -> tuple:
        a = self.active
        o = a.offloader.state() if a is not None and a.offloader is not None else None
        return self.served, self.failed, (o.remote, o.fallback, o.local) if o is not None else None

    def _tick(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            if self._counts() != self._reported_counts:
                try:
                    self._report()
                except Exception:  # e.g. the link is down: the next tick (or the reconnect hook) reports
                    log.debug("%s: periodic report failed", self.device_id, exc_info=True)

    def _fail(self, message: str) -> None:
        log.error("%s: %s", self.device_id, message)
        self.metrics.error("update")
        with self._lock:
            self.last_error = message
            self.healthy = self.active is not None and self.healthy is not False
        self._report()

    def _report(self) -> None:
        # building and publishing under one lock: a report built before a swap must not be
        # published after the swap's own report (the retained state would be stale)
        with self._report_lock:
            if not self._closed:
                self._publish_report()

    def _publish_report(self) -> None:
        self.client.publish(topics.reported(self.device_id), self._state("online"), retain=True)

    def _state(self, status: str) -> bytes:
        a, p = self.active, self.previous
        self._reported_counts = self._counts()
        state = ReportedState(
            device_id=self.device_id, status=status,
            model=a.name if a else None, version=a.version if a else None,
            previous_version=p.version if p else None,
            shard_sha256=a.held() if a else (),
            healthy=self.healthy, last_error=self.last_error,
            offload=a.offloader.state() if a and a.offloader else None,
            retrying=self.retrying, auto_rollback=self.auto_rollback,
            service=_service_state(a) if a and a.service else None,
            labels=self.labels, groups=self.groups, update=self.update, served=self.served, failed=self.failed,
        )  # fmt: skip
        return state.model_dump_json().encode()


def _run_service(active: Active, inputs: Mapping[str, np.ndarray], tasks: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Outputs of the named tasks keyed TASK/TENSOR; none named: the only task's, under their own names."""
    if tasks:
        return flatten_outputs(active.service.run(inputs, tasks))
    return active.service.run_task(inputs, active.manifest.tasks_or_only(tasks)[0])


def _service_state(a: Active) -> ServiceState:
    m, svc = a.manifest, a.service
    remote = tuple(s.sha256 for s in m.submodels if svc.kinds.get(s.name) == "remote")
    return ServiceState(tasks=tuple(t.name for t in m.tasks), held=a.held(), remote=remote)
