"""A worker's Prometheus metrics: the queue depth an autoscaler scales the pool on (deploy/k8s/), requests served,
failed and shed, and the latency from a request's arrival to its answer.

Each worker has its own CollectorRegistry (several workers in one process, as in tests and the demo, do not clash),
served over HTTP only when asked (`edge-maas worker --metrics-port N`, profile `metrics_port`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from edge_maas.errors import TransportError

log = logging.getLogger(__name__)

# seconds, arrival to answer: a local stage runs in ~1..100 ms, a device's deadline is ~0.5 s (offload.deadline_ms)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Outcome = Literal["served", "failed", "shed"]
_COUNTERS = {  # edge_maas_worker_requests_<outcome>_total
    "served": "Requests answered with outputs",
    "failed": "Requests answered with an error (bad request, unknown manifest, deadline passed while queued, ...)",
    "shed": "Requests refused at once because the queue was full (max_queue): the device runs the stages itself",
}


class WorkerMetrics:
    """``queue_depth``: called at each scrape (requests waiting, not counting the batch being run)."""

    def __init__(self, worker: str, queue_depth: Callable[[], int]):
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"labelnames": ("worker",), "registry": self.registry}
        depth = Gauge("edge_maas_worker_queue_depth", "Offload requests queued at this worker, waiting for a batch",
                      **labels)  # fmt: skip
        depth.labels(worker).set_function(queue_depth)  # read at scrape time: never stale
        self._count = {o: Counter(f"edge_maas_worker_requests_{o}", doc, **labels) for o, doc in _COUNTERS.items()}
        self._latency = Histogram("edge_maas_worker_request_seconds", "Seconds from a request's arrival at this "
                                  "worker to its answer (queue + run)", buckets=LATENCY_BUCKETS, **labels)  # fmt: skip
        self._worker = worker
        for c in self._count.values():
            c.labels(worker)  # exported as 0 from the start: rate() needs the series before the first event
        self._latency.labels(worker)
        self._server = None
        self._thread: threading.Thread | None = None

    def count(self, outcome: Outcome) -> None:
        self._count[outcome].labels(self._worker).inc()

    def answered(self, seconds: float) -> None:
        self._latency.labels(self._worker).observe(seconds)

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve GET /metrics on ``addr:port`` (port 0: any free port) from a daemon thread; returns the port.
        TransportError when the port cannot be bound (taken, or privileged)."""
        try:
            self._server, self._thread = start_http_server(port, addr, registry=self.registry)
        except OSError as exc:
            raise TransportError(f"cannot serve worker metrics on {addr}:{port}: {exc.strerror}") from None
        port = self._server.server_port
        log.info("worker %s: metrics on http://%s:%d/metrics", self._worker, addr, port)
        return port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
