"""Offload over MQTT, in one place.

RemoteSplit runs a pipeline with its stages from `split` on a remote worker: the local prefix
runs here, the boundary tensors go out with a deadline, and on timeout or a worker error the
suffix runs locally (the device holds every shard).  RemoteSubmodel is a backend for one
submodel of a service that this device does not hold: it runs on a worker, or the request
fails fast with StageUnavailableError (there is nothing to fall back to).  Request ids are
unique; a late reply after a fallback is dropped."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edge_maas.backends.base import Backend, TensorSpec, check_inputs
from edge_maas.errors import EdgeMaasError, StageUnavailableError
from edge_maas.netlab import throttled_s
from edge_maas.pipeline import Pipeline
from edge_maas.service import Submodel
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.compression import compress
from edge_maas.transport.messages import OffloadReply, OffloadRequest, encode, pack_tensors, unpack_tensors
from edge_maas.transport.requests import Requester

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shaper:
    """Emulated link for experiments where `tc netem` is not at hand: every remote exchange
    is delayed by rtt + bytes / bandwidth (both directions), in the transport, plainly."""

    rtt_s: float
    bandwidth_Bps: float

    def delay(self, nbytes: int) -> float:
        return self.rtt_s + nbytes / self.bandwidth_Bps


@dataclass(frozen=True)
class Exchange:
    """One answered remote exchange, as the device measured it and the worker stated it."""

    bytes_out: int  # on the wire, after any codec
    bytes_back: int
    elapsed_s: float  # from publishing the request to having the reply (the link's delay included)
    worker_s: float  # of elapsed_s, in the worker: its worker_ms, else queue + batch (older workers)
    busy_s: float  # what a next request should expect in the worker: queue + compute, one-off installs left out
    ratio: float = 1.0  # wire / raw size of the request
    prefix_s: float = 0.0  # the local prefix, measured
    stalled_s: float = 0.0  # of elapsed_s, this device throttled by its CPU quota: neither the link's nor the worker's


@dataclass
class OffloadStats:
    remote: int = 0
    fallback: int = 0
    bytes_sent: int = 0
    too_large: int = 0  # requests not sent: larger than the broker's maximum packet size (ran locally)


def offload_requester(client: MqttClient) -> Requester:
    """The client's offload reply topic and waiters; share one among RemoteSplits of a client."""
    return Requester(client, topics.offload_reply(client.client_id), OffloadReply, lambda r: r.id)


def reply_outputs(reply: OffloadReply, body: bytes,
                  specs: tuple[TensorSpec, ...]) -> tuple[dict[str, np.ndarray] | None, str]:  # fmt: skip
    """A worker's outputs if they are exactly ``specs`` (names, shapes, dtypes), only those (a reply cannot add
    tensors that would overwrite what the device computed); else None and why."""
    if reply.error is not None:
        return None, f"refused ({reply.error})"
    try:
        outs = unpack_tensors(reply.outputs, body)
        check_inputs(specs, outs)
    except EdgeMaasError as exc:
        return None, f"unusable reply ({exc})"
    return {s.name: outs[s.name] for s in specs}, ""


class RemoteSplit:
    def __init__(self, client: MqttClient, pipeline: Pipeline, model: str, manifest_sha256: str, manifest_size: int,
                 deadline_s: float = 1.0, shaper: Shaper | None = None, codec: str = "none",
                 requester: Requester | None = None):  # fmt: skip
        self.client = client
        self.pipeline = pipeline
        self.model = model
        self.manifest_sha256 = manifest_sha256
        self.manifest_size = manifest_size
        self.deadline_s = deadline_s
        self.stats = OffloadStats()  # late replies (after a fallback): self._requests.late
        self.shaper = shaper
        self.codec = codec  # of boundary tensors on the wire: 'none', 'zlib' or 'rle'
        self.last: Exchange | None = None  # the last answered remote exchange
        self.local_s = 0.0  # seconds the last run() spent running stages here (prefix, or all, or the fallback)
        self.local_stalled_s = 0.0  # of local_s, stalled by this device's CPU quota (see netlab.throttled_s)
        self._requests = requester or offload_requester(client)

    def run(self, inputs: Mapping[str, np.ndarray], split: int,
            fallback: bool = True) -> tuple[dict[str, np.ndarray], str]:  # fmt: skip
        """Outputs and where the suffix ran ('local', 'remote:<worker>' or 'fallback').  fallback False:
        StageUnavailableError instead of running the suffix here when no worker answers."""
        n = len(self.pipeline.stages)
        t0, th0 = time.perf_counter(), throttled_s()
        if split >= n:
            out = self.pipeline.run(inputs)
            self.local_s, self.local_stalled_s = time.perf_counter() - t0, _since(th0)
            return out, "local"
        env = self.pipeline.run_prefix(inputs, split)
        prefix_s, self.local_stalled_s = time.perf_counter() - t0, _since(th0)
        self.local_s = prefix_s
        suffix = self.pipeline.suffix(split)
        boundary = {s.name: env[s.name] for s in suffix.inputs}
        metas, body = pack_tensors(boundary)
        rid = self._requests.new_id()
        req = OffloadRequest(id=rid, reply_to=self._requests.reply_topic, manifest_sha256=self.manifest_sha256,
                             manifest_size=self.manifest_size, first_stage=split, inputs=metas,
                             deadline_ms=max(1, int(self.deadline_s * 1e3)), codec=self.codec)  # fmt: skip
        raw = len(body)
        body = compress(body, self.codec)
        payload = encode(req, body)
        room = self.client.max_payload(topics.offload(self.model), qos=0)
        if room is not None and len(payload) > room:
            # never queue what the broker would disconnect us for: the suffix runs here instead
            self.stats.too_large += 1
            self.stats.fallback += 1
            log.warning("offload %s: the request (%d bytes) exceeds %s; running locally", rid[:8], len(payload),
                        self.client.limit_text())  # fmt: skip
            return self._fallback(suffix, boundary, fallback, f"the request exceeds {self.client.limit_text()}")
        self.stats.bytes_sent += len(payload)
        stalled0 = throttled_s()
        t_send = time.perf_counter()
        answer = self._requests.request(topics.offload(self.model), rid, payload, self.deadline_s)
        if answer is not None:
            reply, out_body = answer
            outs, problem = reply_outputs(reply, out_body, self.pipeline.outputs)
            if outs is not None:
                self.stats.remote += 1
                if self.shaper is not None:
                    time.sleep(self.shaper.delay(len(payload) + len(out_body)))
                elapsed = time.perf_counter() - t_send
                stalled = _since(stalled0)
                # the request waited its queue time and its whole batch's run; older workers do not say worker_ms
                busy = (reply.queue_ms - reply.setup_ms + reply.batch_ms) / 1e3
                in_worker = reply.worker_ms / 1e3 if reply.worker_ms is not None else (reply.queue_ms + reply.batch_ms) / 1e3
                ratio = len(payload) / (len(payload) - len(body) + raw)
                self.last = Exchange(len(payload), len(out_body), elapsed, min(in_worker, elapsed), max(busy, 0.0), ratio,
                                     prefix_s, min(stalled, elapsed - min(in_worker, elapsed)))  # fmt: skip
                return outs, f"remote:{reply.worker}"
            log.warning("offload %s: worker %s: %s; running locally", rid[:8], reply.worker, problem)
            why = f"worker {reply.worker}: {problem}"
        else:
            log.warning("offload %s: no reply within %.0f ms; running locally", rid[:8], self.deadline_s * 1e3)
            why = f"no worker answered within {self.deadline_s * 1e3:.0f} ms"
        return self._fallback(suffix, boundary, fallback, why)

    def _fallback(self, suffix: Pipeline, boundary: dict[str, np.ndarray], allowed: bool,
                  why: str) -> tuple[dict[str, np.ndarray], str]:  # fmt: skip
        self.stats.fallback += 1
        if not allowed:
            raise StageUnavailableError(f"stages {suffix.stages[0].index}.. must run on a worker: {why}")
        t0, th0 = time.perf_counter(), throttled_s()
        out = suffix.run(boundary)
        self.local_s += time.perf_counter() - t0
        self.local_stalled_s += _since(th0)
        return out, "fallback"

    def run_planned(self, inputs: Mapping[str, np.ndarray], planner,
                    fallback: bool = True) -> tuple[dict[str, np.ndarray], str, object]:  # fmt: skip
        """Let the planner pick the split, run it, feed the measurements back (wire and worker time
        apart, and the local stages' real time); returns the decision too.  StageUnavailableError
        when the planner has no split that can run (remote_only with no worker online), or when
        fallback is False and no worker answered."""
        decision = planner.choose()
        if decision.unavailable:
            raise StageUnavailableError(decision.reason)
        n = len(self.pipeline.stages)
        cpu0 = time.thread_time()  # this request's thread: the prefix, packing, sending (not other threads' work)
        try:
            out, where = self.run(inputs, decision.split, fallback)
        except StageUnavailableError:
            planner.failed(decision.split)
            raise
        # a CPU-quota stall is this device's, wherever it lands: not the link's nor a stage's; it is charged by the
        # CPU each split uses (Estimates.observe_cpu)
        if where.startswith("remote"):
            x = self.last
            planner.observed(decision.split, x.bytes_out, x.bytes_back, x.elapsed_s - x.stalled_s, x.worker_s, x.ratio,
                             x.busy_s)  # fmt: skip
            if decision.split > 0:
                planner.observed_local(0, decision.split, x.prefix_s - self.local_stalled_s)
        elif where == "fallback":
            planner.failed(decision.split)
        else:
            planner.observed_local(0, n, self.local_s - self.local_stalled_s)
        if where != "fallback" and (throttled := throttled_s()) is not None:
            planner.observed_cpu(decision.split, time.thread_time() - cpu0, throttled, time.process_time())
        log.debug("planner: %s -> %s", decision.reason, where)
        return out, where, decision


def _since(throttled0: float | None) -> float:
    """Seconds this device's CPU cgroup was throttled since throttled0 (from netlab.throttled_s); 0 if unknown."""
    now = throttled_s()
    return max(now - throttled0, 0.0) if throttled0 is not None and now is not None else 0.0


class RemoteSubmodel(Backend):
    """One submodel of a signed service, run by a worker of the pool that serves ``topics.offload(service)``;
    the worker fetches the service manifest and the submodel by sha256 and verifies both, as devices do.

    ``run`` raises StageUnavailableError when no worker is online (``workers_online``), none answers within
    ``deadline_s`` seconds, a worker refuses, or the request exceeds the broker's packet limit."""

    def __init__(self, client: MqttClient, requester: Requester, service: str, manifest_blob: tuple[str, int],
                 submodel: Submodel, deadline_s: float = 1.0, codec: str = "none",
                 workers_online=None):  # fmt: skip
        self.client = client
        self.service = service
        self.manifest_sha256, self.manifest_size = manifest_blob
        self.submodel = submodel
        self.deadline_s = deadline_s
        self.codec = codec
        self.workers_online = workers_online  # () -> bool, from the workers' retained status; None: unknown
        self.inputs = tuple(TensorSpec(t.name, tuple(t.shape), t.dtype) for t in submodel.inputs)
        self.outputs = tuple(TensorSpec(t.name, tuple(t.shape), t.dtype) for t in submodel.outputs)
        self.stats = OffloadStats()
        self._requests = requester

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.workers_online is not None and not self.workers_online():
            raise StageUnavailableError("it is not held here and no worker is online")
        check_inputs(self.inputs, inputs)
        metas, body = pack_tensors({s.name: inputs[s.name] for s in self.inputs})
        rid = self._requests.new_id()
        req = OffloadRequest(id=rid, reply_to=self._requests.reply_topic, manifest_sha256=self.manifest_sha256,
                             manifest_size=self.manifest_size, first_stage=0, inputs=metas,
                             deadline_ms=max(1, int(self.deadline_s * 1e3)), codec=self.codec,
                             submodel_sha256=self.submodel.sha256)  # fmt: skip
        payload = encode(req, compress(body, self.codec))
        topic = topics.offload(self.service)
        room = self.client.max_payload(topic, qos=0)
        if room is not None and len(payload) > room:
            self.stats.too_large += 1
            raise StageUnavailableError(f"it is not held here and its inputs ({len(payload)} bytes) exceed "
                                        f"{self.client.limit_text()}")  # fmt: skip
        self.stats.bytes_sent += len(payload)
        answer = self._requests.request(topic, rid, payload, self.deadline_s)
        if answer is None:
            self.stats.fallback += 1
            raise StageUnavailableError(f"it is not held here and no worker answered within "
                                        f"{self.deadline_s * 1e3:.0f} ms")  # fmt: skip
        reply, out_body = answer
        outs, problem = reply_outputs(reply, out_body, self.outputs)
        if outs is None:
            self.stats.fallback += 1
            raise StageUnavailableError(f"it is not held here and worker {reply.worker} gave no outputs: {problem}")
        self.stats.remote += 1
        return outs
