"""A device's Prometheus metrics: inference requests and their latency per task (MQTT and the local HTTP API alike),
each stage's latency (local or run by a worker), errors, bytes fetched, install attempts, results and progress,
offload decisions and the current plan, cache use, and the version running.

One CollectorRegistry per agent; served only when asked (`edge-maas device --metrics-port N`, profile
``metrics_port``), on 127.0.0.1 unless the profile's ``metrics_host`` says otherwise: the series name the device's
tasks and versions, nothing a network outside the device needs to read (scrape it through a local agent or proxy).
What the agent knows anyway (fetch counters, cache, version, plan) is read at scrape time, never stale."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge_maas.backends import Backend
from edge_maas.metrics_http import LATENCY_BUCKETS, Endpoint

if TYPE_CHECKING:
    from edge_maas.device.agent import Active, DeviceAgent

InstallResult = Literal["installed", "health_check_failed", "fetch_failed", "failed", "rolled_back"]
UNKNOWN_TASK = "unknown"  # a task the running version lacks: its name is not a label value (unbounded series)
NO_TASK = "-"  # no task named and none to infer (no version yet, or a service with several tasks)
PROGRESS_EVERY_S = 0.5  # the reported state's install progress is republished at most this often


class DeviceMetrics(Endpoint):
    what = "device"
    default_addr = "127.0.0.1"

    def __init__(self, device_id: str, agent: DeviceAgent):
        self.device_id = device_id
        self.registry = r = CollectorRegistry(auto_describe=True)
        dev = ("device",)
        self._requests = Counter("edge_maas_device_requests", "Inference requests answered, by task and outcome "
                                 "(ok, error); over MQTT and the local HTTP API alike", (*dev, "task", "outcome"),
                                 registry=r)  # fmt: skip
        self._latency = Histogram("edge_maas_device_request_seconds", "Seconds to answer an inference request, by "
                                  "task (inputs decoded to outputs ready)", (*dev, "task"), buckets=LATENCY_BUCKETS,
                                  registry=r)  # fmt: skip
        self._stage = Histogram("edge_maas_device_stage_seconds", "Seconds one stage (a split's shard index, or a "
                                "service's submodel) took: where=local ran here, where=remote on a worker (the whole "
                                "exchange; an offloaded split's suffix is one stage labelled FIRST-LAST)",
                                (*dev, "stage", "where"), buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self._errors = Counter("edge_maas_device_errors", "Errors, by kind: request (an inference failed), "
                               "malformed (an MQTT request dropped unread), update (a desired state refused or an "
                               "install failed), reply_too_large (outputs the broker cannot carry)", (*dev, "kind"),
                               registry=r)  # fmt: skip
        self._attempts = Counter("edge_maas_device_install_attempts", "Installs started (fetch, verify, health "
                                 "check, swap); a retried fetch is a new attempt", dev, registry=r)  # fmt: skip
        self._installs = Counter("edge_maas_device_installs", "Install results: installed, health_check_failed, "
                                 "fetch_failed (retried later), failed (refused: signature, integrity, ...), "
                                 "rolled_back (a swapped-in version failed its probation)", (*dev, "result"),
                                 registry=r)  # fmt: skip
        self._progress = Gauge("edge_maas_device_install_progress", "Share (0..1) of the current install's bytes "
                               "to fetch that arrived; 1 when nothing is being fetched", dev, registry=r)  # fmt: skip
        self._decisions = Counter("edge_maas_device_offload_decisions", "Where an offloading split model ran its "
                                  "suffix, per request: local (the plan kept it here), remote (a worker answered), "
                                  "fallback (offloaded, but run here after all)", (*dev, "decision"),
                                  registry=r)  # fmt: skip
        self._progress.labels(device_id).set(1.0)
        self._attempts.labels(device_id)
        for res in InstallResult.__args__:  # exported as 0 from the start: rate() needs the series first
            self._installs.labels(device_id, res)
        for kind in ("request", "malformed", "update", "reply_too_large"):
            self._errors.labels(device_id, kind)
        for d in ("local", "remote", "fallback"):
            self._decisions.labels(device_id, d)
        r.register(_AgentCollector(device_id, agent))
        self.local_s = 0.0  # seconds of local stages measured so far (what an offloaded request spent here)

    # -- requests ---------------------------------------------------------------------------------
    def request(self, active: Active | None, tasks: Iterable[str], ok: bool, seconds: float) -> None:
        """One inference request answered (``ok``) or failed, after ``seconds``; counted once per task it named."""
        for task in task_labels(active, tasks):
            self._requests.labels(self.device_id, task, "ok" if ok else "error").inc()
            self._latency.labels(self.device_id, task).observe(seconds)
        if not ok:
            self._errors.labels(self.device_id, "request").inc()

    def error(self, kind: str) -> None:
        self._errors.labels(self.device_id, kind).inc()

    def offload(self, where: str, first: int, stages: int, seconds: float) -> None:
        """An offloading split ran its suffix ``where`` ('local', 'remote:<worker>', 'fallback'), from stage ``first``
        of ``stages``; ``seconds``: the remote exchange, for a remote answer."""
        decision = where.split(":")[0]
        self._decisions.labels(self.device_id, decision).inc()
        if decision == "remote":
            self._stage.labels(self.device_id, f"{first}-{stages - 1}", "remote").observe(seconds)

    def instrument(self, active: Active) -> None:
        """Time every stage of ``active`` from now on (its health check is done): each backend is wrapped once; a
        service's submodels reused by a later version keep their wrapper (and label)."""
        svc = active.service
        if svc is not None:
            for name, b in list(svc.backends.items()):
                if not isinstance(b, TimedBackend):
                    where = "remote" if svc.kinds.get(name) == "remote" else "local"
                    svc.backends[name] = TimedBackend(b, self._stage_observer(name, where))
            return
        for st in active.pipeline.stages:
            if not isinstance(st.backend, TimedBackend):
                st.backend = TimedBackend(st.backend, self._stage_observer(str(st.index), "local"))

    def _stage_observer(self, stage: str, where: str) -> Callable[[float], None]:
        child = self._stage.labels(self.device_id, stage, where)

        def observe(seconds: float) -> None:
            child.observe(seconds)
            if where == "local":
                self.local_s += seconds

        return observe

    # -- installs ---------------------------------------------------------------------------------
    def install_started(self) -> None:
        self._attempts.labels(self.device_id).inc()

    def install_result(self, result: InstallResult) -> None:
        self._installs.labels(self.device_id, result).inc()
        self._progress.labels(self.device_id).set(1.0)

    def fetch_progress(self, total: Mapping[str, int], report: Callable[[float], None]) -> FetchProgress:
        """A hook for Installer.on_fetch over the blobs ``total`` (sha256 -> size) still to fetch: sets the gauge
        and calls ``report(share)`` at most every PROGRESS_EVERY_S seconds (and once when all arrived)."""
        return FetchProgress(total, self._progress.labels(self.device_id).set, report)


def task_labels(active: Active | None, tasks: Iterable[str]) -> tuple[str, ...]:
    """The ``task`` label values of a request: the tasks it named that the running version has (others: 'unknown');
    none named: the only task (a split model's is its name), else '-'."""
    tasks = tuple(tasks)
    if active is None:
        return tuple(UNKNOWN_TASK for _ in tasks) or (NO_TASK,)
    m = active.manifest
    known = {t.name for t in m.tasks} if active.service is not None else {active.name}
    if tasks:
        return tuple(dict.fromkeys(t if t in known else UNKNOWN_TASK for t in tasks))
    return (next(iter(known)),) if len(known) == 1 else (NO_TASK,)


class TimedBackend(Backend):
    """A stage's backend, each run timed into ``observe(seconds)``; everything else is the wrapped backend's."""

    def __init__(self, backend: Backend, observe: Callable[[float], None]):
        self.backend = backend
        self.inputs, self.outputs = backend.inputs, backend.outputs
        self._observe = observe

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        out = self.backend.run(inputs)
        self._observe(time.perf_counter() - t0)
        return out

    def batched(self, n: int) -> Backend | None:
        return self.backend.batched(n)

    def close(self) -> None:
        self.backend.close()

    def __getattr__(self, name: str):  # what a backend offers beyond the interface (memory, stats)
        backend = self.__dict__.get("backend")
        if backend is None:
            raise AttributeError(name)
        return getattr(backend, name)


class FetchProgress:
    """Installer.on_fetch for one install: bytes arrived over the bytes to fetch (``total``: sha256 -> size)."""

    def __init__(self, total: Mapping[str, int], gauge: Callable[[float], None], report: Callable[[float], None]):
        self._size = dict(total)
        self._done: dict[str, int] = {}
        self._total = sum(self._size.values())
        self._gauge, self._report = gauge, report
        self._last = 0.0
        self._lock = threading.Lock()
        gauge(0.0 if self._total else 1.0)

    def __call__(self, sha256: str, done: int, size: int) -> None:
        with self._lock:
            if sha256 not in self._size:  # a blob the plan did not expect (a cached copy found corrupt): count it
                self._size[sha256] = size
                self._total += size
            self._done[sha256] = min(done, size)
            share = min(1.0, sum(self._done.values()) / self._total) if self._total else 1.0
            now = time.monotonic()
            due = share >= 1.0 or now - self._last >= PROGRESS_EVERY_S
            if due:
                self._last = now
        self._gauge(share)
        if due:
            self._report(round(share, 4))


class _AgentCollector(Collector):
    """Read at scrape time from the agent: bytes and blobs fetched, cache bytes, the offload plan, the version."""

    def __init__(self, device_id: str, agent: DeviceAgent):
        self.device_id, self.agent = device_id, agent

    def collect(self):
        a, d = self.agent, [self.device_id]
        fetched = CounterMetricFamily("edge_maas_device_fetched_bytes", "Bytes of blobs fetched from the registry "
                                      "(verified, complete blobs)", labels=["device"])  # fmt: skip
        fetched.add_metric(d, a.fetcher.fetched_bytes)
        blobs = CounterMetricFamily("edge_maas_device_fetched_blobs", "Blobs (shards, submodels, manifests) fetched "
                                    "from the registry", labels=["device"])  # fmt: skip
        blobs.add_metric(d, a.fetcher.fetched_blobs)
        cache = GaugeMetricFamily("edge_maas_device_cache_bytes", "Bytes held in the blob cache", labels=["device"])
        cache.add_metric(d, a.cache.total_bytes())
        yield from (fetched, blobs, cache)
        if a.cache_budget is not None:
            budget = GaugeMetricFamily("edge_maas_device_cache_budget_bytes", "The cache's budget (profile "
                                       "memory_budget_mb)", labels=["device"])  # fmt: skip
            budget.add_metric(d, a.cache_budget)
            yield budget
        active = a.active
        info = GaugeMetricFamily(
            "edge_maas_device_model_info",
            "1 for the version running now (labels model, version); no sample before the first install",
            labels=["device", "model", "version"],
        )
        if active is not None:
            info.add_metric([*d, active.name, active.version], 1)
        yield info
        plan = GaugeMetricFamily("edge_maas_device_offload_split", "The offload plan of the running split model: "
                                 "stages 0..split-1 run here, split.. on a worker (split = stages: all here)",
                                 labels=["device", "stages"])  # fmt: skip
        if active is not None and active.offloader is not None:
            o = active.offloader.state()
            plan.add_metric([*d, str(o.stages)], o.split)
        yield plan
