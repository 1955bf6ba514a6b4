"""An offload worker: takes requests from a shared subscription (one worker of the group
gets each), installs the manifest through the same verified path as devices, runs the
requested suffix of stages, replies.  Every request gets a reply (outputs or error)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict

from edge_maas.device.install import Installer
from edge_maas.errors import EdgeMaasError
from edge_maas.pipeline import Pipeline
from edge_maas.registry.blobs import BlobStore
from edge_maas.transport import topics
from edge_maas.transport.chunks import BlobFetcher
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import OffloadReply, OffloadRequest, decode, encode, pack_tensors, unpack_tensors

log = logging.getLogger(__name__)

MAX_BODY = 16 << 20  # boundary tensors larger than this are refused


class Worker:
    def __init__(self, name: str, client: MqttClient, cache: BlobStore, registry_key, *, group: str = "workers",
                 backend: str = "litert", options: dict | None = None):  # fmt: skip
        self.name = name
        self.client = client
        self.installer = Installer(cache, BlobFetcher(client), registry_key, backend, options or {"xnnpack": False})
        self.served = 0
        self.rejected = 0
        self._pipelines: dict[str, Pipeline] = {}
        self._answered: OrderedDict[str, bytes] = OrderedDict()  # idempotency: id -> reply
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name=f"worker-{name}", daemon=True)
        self._thread.start()
        client.subscribe(topics.offload_shared(group), self._on_request)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _on_request(self, topic: str, payload: bytes) -> None:
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
        self._queue.put((req, body, time.monotonic()))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            req, body, t_in = item
            reply = self._answered.get(req.id)
            if reply is None:
                reply = self._serve(req, body, t_in)
                self._answered[req.id] = reply
                while len(self._answered) > 1024:
                    self._answered.popitem(last=False)
            self.client.publish(req.reply_to, reply, qos=0)

    def _serve(self, req: OffloadRequest, body: bytes, t_in: float) -> bytes:
        t0 = time.monotonic()
        try:
            if (t0 - t_in) * 1e3 > req.deadline_ms:
                raise EdgeMaasError("deadline passed while queued")
            suffix = self._suffix(req)
            inputs = unpack_tensors(req.inputs, body)
            outputs = suffix.run(inputs)
            metas, out = pack_tensors(outputs)
            self.served += 1
            return encode(OffloadReply(id=req.id, worker=self.name, outputs=metas, run_ms=(time.monotonic() - t0) * 1e3,
                                       queue_depth=self._queue.qsize()), out)  # fmt: skip
        except EdgeMaasError as exc:
            self.rejected += 1
            log.warning("%s: offload %s refused: %s", self.name, req.id, exc)
            return encode(OffloadReply(id=req.id, worker=self.name, error=str(exc), queue_depth=self._queue.qsize()))

    def _suffix(self, req: OffloadRequest) -> Pipeline:
        pipe = self._pipelines.get(req.manifest_sha256)
        if pipe is None:
            manifest = self.installer.manifest(req.manifest_sha256, req.manifest_size)
            pipe = self._pipelines[req.manifest_sha256] = self.installer.pipeline(manifest)
            log.info("%s: installed %s@%s", self.name, manifest.model.name, manifest.model.version)
        return pipe.suffix(req.first_stage)
