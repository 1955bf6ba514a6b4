"""An offload worker: takes requests from a shared subscription (one worker of the group
gets each), installs the manifest through the same verified path as devices, runs the
requested suffix of stages, replies.  Every valid request gets a reply (outputs or error).

Dynamic batching as Triton's dynamic batcher: requests for the same suffix that arrive
within `max_delay_ms` of the oldest waiting one run as one batch of up to `max_batch`."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edge_maas.backends import check_inputs
from edge_maas.device.install import Installer
from edge_maas.errors import EdgeMaasError, ManifestError, TransportError
from edge_maas.manifest import Manifest
from edge_maas.pipeline import Pipeline
from edge_maas.registry.blobs import BlobStore
from edge_maas.service import ServiceManifest
from edge_maas.transport import topics
from edge_maas.transport.chunks import BlobFetcher
from edge_maas.transport.client import MqttClient
from edge_maas.transport.compression import decompress
from edge_maas.transport.messages import (
    OffloadReply,
    OffloadRequest,
    StageLatency,
    WorkerStatus,
    decode,
    encode,
    pack_tensors,
    unpack_tensors,
)
from edge_maas.trust.root import TrustedRoot, TrustError
from edge_maas.trust.updater import RootUpdater
from edge_maas.worker.metrics import Outcome, WorkerMetrics

log = logging.getLogger(__name__)

MAX_BODY = 16 << 20  # boundary tensors larger than this are refused
MAX_MODELS = 8  # installed manifests kept; the least recently used is dropped beyond this
MAX_MANIFESTS = 64  # verified manifests kept (small): each request's is checked against one of them


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, EdgeMaasError) else f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Batching:
    max_batch: int = 8
    max_delay_ms: float = 0.0  # how long the oldest request may wait for others; 0: batch what is queued

    def __post_init__(self):
        if self.max_batch < 1 or self.max_delay_ms < 0:
            raise ValueError(f"max_batch must be >= 1 and max_delay_ms >= 0, got {self.max_batch}, {self.max_delay_ms}")


class _Item(NamedTuple):
    req: OffloadRequest
    body: bytes
    t_in: float  # monotonic arrival time

    @property
    def ident(self) -> tuple:
        """What a request is, for answering it once and for retries: its id alone would let a request (another
        device's, another submodel's) that reuses an id get an answer computed for something else."""
        r = self.req
        return r.id, r.reply_to, r.manifest_sha256, r.first_stage, r.submodel_sha256


@dataclass
class _StageStats:
    batches: int = 0
    requests: int = 0
    ms_per_batch: float = 0.0
    ms_per_request: float = 0.0

    def add(self, seconds: float, n: int, alpha: float = 0.2) -> None:
        ms = seconds * 1e3
        first = self.batches == 0
        self.ms_per_batch = ms if first else (1 - alpha) * self.ms_per_batch + alpha * ms
        self.ms_per_request = ms / n if first else (1 - alpha) * self.ms_per_request + alpha * ms / n
        self.batches += 1
        self.requests += n


class Worker:
    def __init__(self, name: str, client: MqttClient, cache: BlobStore, registry_key, *, group: str | None = "workers",
                 backend: str = "litert", options: dict | None = None, batching: Batching = Batching(),
                 status_every_s: float = 2.0, max_queue: int = 1024, metrics_port: int | None = None,
                 metrics_host: str = "127.0.0.1"):  # fmt: skip
        """metrics_port: serve Prometheus metrics (worker/metrics.py) on this port (0: any free one; the one bound
        is `metrics_port` then); None: not served.  TransportError when the port cannot be bound."""
        self.name = name
        self.client = client
        self.backend = backend
        self.batching = batching
        self.max_queue = max_queue
        trust = TrustedRoot.coerce(registry_key)
        self.roots = RootUpdater(trust)  # follows key rotations, as devices do
        self.installer = Installer(cache, BlobFetcher(client), trust, backend, options or {"xnnpack": False})
        self.served = 0
        self.rejected = 0
        self.batch_sizes: deque[int] = deque(maxlen=4096)  # of recent batches, for tests and the bench
        self.stage_stats: dict[tuple[str, int], _StageStats] = {}
        self.setup_s = 0.0  # seconds spent installing and verifying manifests (the serving thread's), in all
        self._status_every_s = status_every_s
        self._last_status = 0.0
        self._pipelines: OrderedDict[str, Pipeline] = OrderedDict()  # by manifest, or by submodel for services
        self._submodel_keys: set[str] = set()
        # verified manifests by sha256, while the trusted root stays at _manifests_root (a rotation re-checks them)
        self._manifests: OrderedDict[str, Manifest | ServiceManifest] = OrderedDict()
        self._manifests_root: int | None = None
        self._answered: OrderedDict[tuple, bytes] = OrderedDict()  # idempotency: _Item.ident -> reply
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self.metrics = WorkerMetrics(name, self._queue.qsize)
        self.metrics_port = self.metrics.serve(metrics_port, metrics_host) if metrics_port is not None else None
        self._thread = threading.Thread(target=self._work, name=f"worker-{name}", daemon=True)
        self._thread.start()
        # group None: a plain subscription, for brokers without shared subscriptions (the embedded
        # amqtt broker) where one worker serves alone
        client.subscribe(topics.trust_root("+"), self._on_root)
        client.subscribe(topics.offload_shared(group) if group else topics.offload("+"), self._on_request)
        self._publish_status()

    def _on_root(self, topic: str, payload: bytes) -> None:
        try:
            self.roots.offer(payload)
        except TrustError as exc:
            log.error("worker %s: refused root metadata on %s: %s", self.name, topic, exc)

    def close(self) -> None:
        """Finish what is queued, then say offline (a clean disconnect sends no last will)."""
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._publish(topics.worker_status(self.name), self.status("offline").model_dump_json().encode(), retain=True)
        self.metrics.close()

    def _on_request(self, topic: str, payload: bytes) -> None:
        t_in = time.monotonic()  # before decoding: the reply's worker_ms covers all the time spent here
        if len(payload) > MAX_BODY:
            self.rejected += 1
            log.warning("%s: dropped an offload request of %d bytes (limit %d)", self.name, len(payload), MAX_BODY)
            return
        try:
            req, body = decode(payload, OffloadRequest)
        except EdgeMaasError as exc:
            self.rejected += 1
            log.warning("%s: dropped a malformed offload request: %s", self.name, exc)
            return
        if self._queue.qsize() >= self.max_queue:  # shed load: the device falls back at once
            it = _Item(req, body, t_in)
            self._reply(it, self._error(it, f"worker overloaded: {self.max_queue} requests queued", "shed"), set())
            return
        self._queue.put(_Item(req, body, t_in))

    # -- batching ------------------------------------------------------------------------------
    def _work(self) -> None:
        while (items := self._next_batch()) is not None:
            groups: dict[tuple, list[_Item]] = {}
            for it in items:  # a submodel batches across the services and devices naming it (each request is
                r = it.req  # checked against its own manifest in _inputs)
                groups.setdefault(("submodel", r.submodel_sha256) if r.submodel_sha256 else
                                  (r.manifest_sha256, r.first_stage), []).append(it)  # fmt: skip
            for group in groups.values():
                replied: set[tuple] = set()
                try:
                    self._serve(group, replied)
                except Exception as exc:  # a bug must not stop the worker: answer the rest, go on
                    log.exception("%s: failed serving a batch", self.name)
                    for it in group:
                        if it.ident not in replied:
                            self._reply(it, self._error(it, f"worker failure: {type(exc).__name__}: {exc}"), replied)
            if time.monotonic() - self._last_status >= self._status_every_s:
                self._publish_status()

    def _next_batch(self) -> list[_Item] | None:
        while True:  # idle: still report now and then
            try:
                first = self._queue.get(timeout=max(0.01, self._last_status + self._status_every_s - time.monotonic()))
                break
            except queue.Empty:
                self._publish_status()
        if first is None:
            return None
        items = [first]
        until = first.t_in + self.batching.max_delay_ms / 1e3
        while len(items) < self.batching.max_batch:
            try:
                it = self._queue.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
            if it is None:
                self._queue.put(None)  # stop after this batch
                break
            items.append(it)
        return items

    def _serve(self, group: list[_Item], replied: set[tuple]) -> None:
        """One batch of requests for the same suffix; each request is answered exactly once
        (its ident lands in `replied`), and a bad request fails only itself."""
        todo: list[tuple[_Item, dict[str, np.ndarray]]] = []
        setup0 = self.setup_s
        for it in group:
            if it.ident in replied or any(it.ident == t.ident for t, _ in todo):
                continue  # a duplicate inside one batch is answered once
            if (cached := self._answered.get(it.ident)) is not None:
                self._reply(it, cached, replied)
                continue
            try:
                todo.append((it, self._inputs(it)))
            except Exception as exc:  # noqa: BLE001 - whatever a request carries, it gets an answer
                self._reply(it, self._error(it, _describe(exc)), replied)
        if not todo:
            return
        suffix = self._suffix(todo[0][0].req)
        setup_ms = (self.setup_s - setup0) * 1e3  # installs this batch waited for: not the link's, nor the stage's
        t0 = time.monotonic()
        stage_s: list[float] = []
        try:
            outs = suffix.run_batch([x for _, x in todo], stage_s)
        except Exception as exc:  # noqa: BLE001
            for it, _ in todo:
                self._reply(it, self._error(it, _describe(exc)), replied)
            return
        run_s, n = time.monotonic() - t0, len(todo)
        self._record(todo[0][0].req, suffix, stage_s, n)
        depth = self._queue.qsize()
        for (it, _), out in zip(todo, outs):
            metas, body = pack_tensors(out)
            self.served += 1
            self.metrics.count("served")
            reply = OffloadReply(id=it.req.id, worker=self.name, outputs=metas, run_ms=run_s / n * 1e3,
                                 batch_ms=run_s * 1e3, queue_ms=(t0 - it.t_in) * 1e3, batch=n, queue_depth=depth,
                                 worker_ms=(time.monotonic() - it.t_in) * 1e3, setup_ms=setup_ms)  # fmt: skip
            self._reply(it, encode(reply, body), replied, remember=True)

    def _inputs(self, it: _Item) -> dict[str, np.ndarray]:
        """Validated boundary tensors of one request (decompressed within the announced size)."""
        req = it.req
        if (time.monotonic() - it.t_in) * 1e3 > req.deadline_ms:
            raise EdgeMaasError("deadline passed while queued")
        suffix = self._suffix(req)
        size = sum(math.prod(m.shape) * np.dtype(m.dtype).itemsize for m in req.inputs)
        if size > MAX_BODY:
            raise TransportError(f"announced tensors of {size} bytes exceed the limit of {MAX_BODY}")
        inputs = unpack_tensors(req.inputs, decompress(it.body, req.codec, size))
        check_inputs(suffix.inputs, inputs)
        return inputs

    def _suffix(self, req: OffloadRequest) -> Pipeline:
        """The stages a request runs: a split's suffix, or one submodel of a service (one stage).  Every request
        is checked against its own signed manifest (verified once, cached), also when the submodel it names is
        already loaded for another service: a worker runs only what a manifest signed for the registry lists."""
        manifest = self._manifest(req)
        what = f"{manifest.name}@{manifest.version}"
        sub = None
        if req.submodel_sha256 is not None:
            if not isinstance(manifest, ServiceManifest):
                raise EdgeMaasError(f"{what} is a split model, not a service: it has no submodel "
                                    f"{req.submodel_sha256[:12]} to run by hash")  # fmt: skip
            sub = manifest.by_sha256(req.submodel_sha256)  # ManifestError when the service does not list it
            if req.first_stage != 0:
                raise ManifestError(f"submodel {sub.name} of {what} is one stage: first_stage must be 0, "
                                    f"not {req.first_stage}")  # fmt: skip
            key = sub.sha256  # a submodel is the same whichever service names it: loaded once
            what = f"submodel {sub.name} ({key[:12]}) of {what}"
        elif isinstance(manifest, ServiceManifest):
            raise EdgeMaasError(f"{what} is a service: name the submodel to run (submodel_sha256)")
        else:
            key = req.manifest_sha256
        pipe = self._pipelines.get(key)
        if pipe is None:
            t0 = time.monotonic()
            if sub is not None:
                pipe = self.installer.submodel(manifest, sub)
                self._submodel_keys.add(key)
            else:
                pipe = self.installer.pipeline(manifest)
            self._pipelines[key] = pipe
            self.setup_s += time.monotonic() - t0
            log.info("%s: installed %s", self.name, what)
            while len(self._pipelines) > MAX_MODELS:  # least recently used goes, with its stats
                old, gone = self._pipelines.popitem(last=False)
                gone.close()
                self._submodel_keys.discard(old)
                self.stage_stats = {k: v for k, v in self.stage_stats.items() if k[0] != old}
        self._pipelines.move_to_end(key)
        return pipe.suffix(req.first_stage)

    def _manifest(self, req: OffloadRequest) -> Manifest | ServiceManifest:
        """The request's manifest (a v1 split or a v2 service), its signatures verified against the trusted root;
        kept while that root stays the same.  ManifestError when tampered or signed by an untrusted key."""
        root = getattr(self.installer.key, "version", None)
        if root != self._manifests_root:  # a rotation may have revoked a key: verify again under the new root
            self._manifests.clear()
            self._manifests_root = root
        manifest = self._manifests.get(req.manifest_sha256)
        if manifest is None:
            t0 = time.monotonic()
            manifest = self.installer.manifest(req.manifest_sha256, req.manifest_size)
            self.setup_s += time.monotonic() - t0
            self._manifests[req.manifest_sha256] = manifest
            while len(self._manifests) > MAX_MANIFESTS:
                self._manifests.popitem(last=False)
        self._manifests.move_to_end(req.manifest_sha256)
        return manifest

    # -- replies and reports ---------------------------------------------------------------------
    def _error(self, it: _Item, message: str, outcome: Outcome = "failed") -> bytes:
        self.rejected += 1
        self.metrics.count(outcome)
        log.warning("%s: offload %s refused: %s", self.name, it.req.id, message)
        return encode(OffloadReply(id=it.req.id, worker=self.name, error=message, queue_depth=self._queue.qsize()))

    def _reply(self, it: _Item, reply: bytes, replied: set[tuple], remember: bool = False) -> None:
        """Answer once.  Only results are remembered for retries of the same request: an error
        (deadline passed, not installed yet) may not be final."""
        replied.add(it.ident)
        self.metrics.answered(time.monotonic() - it.t_in)
        if too_large := self.client.oversize(it.req.reply_to, reply, qos=0):  # the device gets an error now, not a timeout
            reply, remember = self._error(it, f"reply of {too_large}"), False
        if remember and it.ident not in self._answered:
            self._answered[it.ident] = reply
            while len(self._answered) > 1024:
                self._answered.popitem(last=False)
        self._publish(it.req.reply_to, reply)

    def _publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        try:
            self.client.publish(topic, payload, qos=0 if not retain else 1, retain=retain)
        except Exception as exc:  # noqa: BLE001 - a failed send must not stop the worker
            log.warning("%s: could not publish on %s: %s", self.name, topic, exc)

    def _record(self, req: OffloadRequest, suffix: Pipeline, stage_s: list[float], n: int) -> None:
        self.batch_sizes.append(n)
        self.metrics.batch(n)
        key = req.submodel_sha256 or req.manifest_sha256
        for st, s in zip(suffix.stages, stage_s):
            self.stage_stats.setdefault((key, st.index), _StageStats()).add(s, n)

    def status(self, state: str = "online") -> WorkerStatus:
        subs = self._submodel_keys
        stages = tuple(
            StageLatency(manifest_sha256=m, stage=k, batches=s.batches, mean_batch=s.requests / s.batches,
                         ms_per_batch=round(s.ms_per_batch, 3), ms_per_request=round(s.ms_per_request, 3),
                         submodel_sha256=m if m in subs else None)
            for (m, k), s in sorted(self.stage_stats.items())
        )  # fmt: skip
        b = self.batching
        return WorkerStatus(worker=self.name, status=state, backend=self.backend, max_batch=b.max_batch,
                            max_delay_ms=b.max_delay_ms, served=self.served, rejected=self.rejected,
                            queue_depth=self._queue.qsize(), stages=stages)  # fmt: skip

    def _publish_status(self) -> None:
        self._last_status = time.monotonic()
        self._publish(topics.worker_status(self.name), self.status().model_dump_json().encode(), retain=True)
