"""The device agent: follows its retained desired state, fetches only the blobs its cache
lacks, verifies signature and hashes before anything is cached or loaded, health-checks
the new version on its golden pair, swaps atomically, reports (retained).

Network callbacks only enqueue; a worker thread does the fetching (the fetch itself
needs the network thread to deliver chunks)."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from edge_maas.backends.remote import offload_requester
from edge_maas.config import OffloadSettings
from edge_maas.device.install import Installer
from edge_maas.device.offloader import Offloader, WorkerBoard
from edge_maas.errors import EdgeMaasError, IntegrityError
from edge_maas.manifest import Manifest
from edge_maas.pipeline import Pipeline
from edge_maas.registry.blobs import BlobStore
from edge_maas.transport import topics
from edge_maas.transport.chunks import BlobFetcher
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import (
    DesiredState,
    InferReply,
    InferRequest,
    ReportedState,
    decode,
    encode,
    pack_tensors,
    unpack_tensors,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Active:
    manifest: Manifest
    pipeline: Pipeline
    offloader: Offloader | None = None  # when the profile enables offload

    @property
    def version(self) -> str:
        return self.manifest.model.version


class DeviceAgent:
    def __init__(self, device_id: str, client: MqttClient, cache: BlobStore, registry_key, *,
                 backend: str = "litert", backend_options: Mapping | None = None, chunk_size: int = 64 * 1024,
                 cache_budget: int | None = None, offload: OffloadSettings | None = None):  # fmt: skip
        self.device_id = device_id
        self.client = client
        self.cache = cache
        self.key = registry_key
        self.backend = backend
        self.options = dict(backend_options or {"xnnpack": False})  # golden pairs come from built-in kernels
        self.fetcher = BlobFetcher(client, chunk_size=chunk_size)
        self.installer = Installer(cache, self.fetcher, registry_key, backend, self.options)
        self.cache_budget = cache_budget
        self.active: Active | None = None
        self.previous: Active | None = None
        self.last_error: str | None = None
        self.healthy: bool | None = None
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
        if self.offload is not None:
            self._requester = offload_requester(client)
            self._board = WorkerBoard(client)
        self.served = 0
        self.failed = 0
        self._state_file = cache.root / "state.json"
        self._manifest_blobs: list[str] = []
        self._restore()
        client.subscribe(topics.desired(device_id), self._on_desired)
        client.subscribe(topics.infer_request(device_id), self._on_infer, qos=0)
        self._report()

    # -- serving ---------------------------------------------------------------------------
    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the active version.  The reference is read once: a swap never mixes versions."""
        active = self.active
        if active is None:
            raise EdgeMaasError(f"device {self.device_id} has no model yet")
        return self._run(active, inputs)

    def _run(self, active: Active, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # a pipeline's backends reuse their buffers (native arenas, interpreters): one run at a
        # time, whether the request came over MQTT or through infer()
        with self._run_lock:
            if active.offloader is None:
                return active.pipeline.run(inputs)
            out, _, replanned = active.offloader.run(inputs)
        if replanned:
            self._report()
        return out

    def _on_infer(self, topic: str, payload: bytes) -> None:
        """infer over MQTT: framed request in, framed reply out; every failure is answered."""
        try:
            req, body = decode(payload, InferRequest)
        except EdgeMaasError as exc:
            self.failed += 1
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
        try:
            if active is None:
                raise EdgeMaasError("no model deployed yet")
            outputs = self._run(active, unpack_tensors(req.inputs, body))
            metas, out_body = pack_tensors(outputs)
            reply = encode(InferReply(corr=req.corr, version=active.version, outputs=metas), out_body)
            self.served += 1
        except EdgeMaasError as exc:
            self.failed += 1
            reply = encode(InferReply(corr=req.corr, version=active.version if active else None, error=str(exc)))
        self.client.publish(req.reply_to, reply, qos=0)

    def close(self) -> None:
        self._queue.put(None)
        self._infer_q.put(None)
        self._worker.join(timeout=10)
        self._server.join(timeout=10)

    # -- desired state -----------------------------------------------------------------------
    def _on_desired(self, topic: str, payload: bytes) -> None:
        if not payload:  # retained message cleared
            return
        try:
            self._queue.put(DesiredState.model_validate_json(payload))
        except ValidationError as exc:
            self._fail(f"malformed desired state ignored: {str(exc).splitlines()[0]}")

    def _work(self) -> None:
        while (desired := self._queue.get()) is not None:
            try:
                self._apply(desired)
            except EdgeMaasError as exc:
                self._fail(f"{desired.model}@{desired.version}: {exc}")
            except Exception as exc:  # the daemon keeps serving the version it has
                log.exception("unexpected failure applying %s@%s", desired.model, desired.version)
                self._fail(f"{desired.model}@{desired.version}: {type(exc).__name__}: {exc}")

    def _apply(self, desired: DesiredState) -> None:
        if self.active and self.active.manifest.model.name == desired.model and self.active.version == desired.version:
            return
        manifest = self.installer.manifest(desired.manifest_sha256, desired.manifest_size)
        if (manifest.model.name, manifest.model.version) != (desired.model, desired.version):
            raise IntegrityError(f"manifest is {manifest.model.name}@{manifest.model.version}, not the desired one")
        try:
            pipeline = self.installer.pipeline(manifest)
        except EdgeMaasError as exc:
            kept = self.active.version if self.active else "no version"
            raise EdgeMaasError(f"{exc}; kept {kept}") from None
        active = self._active(manifest, desired, pipeline)
        with self._lock:
            self.previous, self.active = self.active, active
            self.healthy, self.last_error = True, None
            self._manifest_blobs = [desired.manifest_sha256, *self._manifest_blobs[:1]]  # active, previous
        self._persist(desired)
        self._evict()
        log.info("%s: now running %s@%s", self.device_id, desired.model, desired.version)
        self._report()

    def _active(self, manifest: Manifest, desired: DesiredState, pipeline: Pipeline) -> Active:
        """The version ready to serve; with offload, its planner profiled on the golden input."""
        if self.offload is None:
            return Active(manifest, pipeline)
        blob = (desired.manifest_sha256, desired.manifest_size)
        offloader = Offloader(self.client, self._requester, self._board, manifest, blob, pipeline, self.offload)
        log.info("%s: offload planner for %s@%s: local stages %s ms", self.device_id, desired.model, desired.version,
                 [round(t * 1e3, 2) for t in offloader.planner.est.local_stage_s])  # fmt: skip
        return Active(manifest, pipeline, offloader)

    def _evict(self) -> None:
        """Keep the cache within budget; what the active and previous versions need stays."""
        if self.cache_budget is None:
            return
        keep = set()
        for a in (self.active, self.previous):
            if a is not None:
                keep.update(s.sha256 for s in a.manifest.shards)
        keep.update(self._manifest_blobs)
        self.cache.evict(self.cache_budget, keep)

    def _persist(self, desired: DesiredState) -> None:
        """Record the running version (temp file, fsync, rename): a restart resumes from it."""
        tmp = self._state_file.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(desired.model_dump_json().encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._state_file)

    def _restore(self) -> None:
        """Load the last good version from the cache, re-verifying everything; no network."""
        try:
            desired = DesiredState.model_validate_json(self._state_file.read_bytes())
        except (OSError, ValidationError):
            return
        try:
            offline = Installer(self.cache, None, self.key, self.backend, self.options)
            manifest = offline.manifest(desired.manifest_sha256, desired.manifest_size)
            self.active, self.healthy = self._active(manifest, desired, offline.pipeline(manifest)), True
            self._manifest_blobs = [desired.manifest_sha256]
            log.info("%s: restored %s@%s from the cache", self.device_id, desired.model, desired.version)
        except EdgeMaasError as exc:
            self.last_error = f"could not restore {desired.model}@{desired.version}: {exc}"
            log.error("%s: %s", self.device_id, self.last_error)

    def _fail(self, message: str) -> None:
        log.error("%s: %s", self.device_id, message)
        with self._lock:
            self.last_error = message
            self.healthy = self.active is not None and self.healthy is not False
        self._report()

    def _report(self) -> None:
        # building and publishing under one lock: a report built before a swap must not be
        # published after the swap's own report (the retained state would be stale)
        with self._report_lock:
            self._publish_report()

    def _publish_report(self) -> None:
        a, p = self.active, self.previous
        state = ReportedState(
            device_id=self.device_id, status="online",
            model=a.manifest.model.name if a else None, version=a.version if a else None,
            previous_version=p.version if p else None,
            shard_sha256=tuple(s.sha256 for s in a.manifest.shards) if a else (),
            healthy=self.healthy, last_error=self.last_error,
            offload=a.offloader.state() if a and a.offloader else None,
        )  # fmt: skip
        self.client.publish(topics.reported(self.device_id), state.model_dump_json().encode(), retain=True)
