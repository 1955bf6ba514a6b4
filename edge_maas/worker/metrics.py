"""A worker's Prometheus metrics: the queue depth an autoscaler scales the pool on (deploy/k8s/), requests served,
failed and shed, the latency from a request's arrival to its answer, and the size of the batches it runs.

Each worker has its own CollectorRegistry (several workers in one process, as in tests and the demo, do not clash),
served over HTTP only when asked (`edge-maas worker --metrics-port N`, profile `metrics_port`; edge_maas/metrics_http)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edge_maas.metrics_http import LATENCY_BUCKETS, Endpoint

Outcome = Literal["served", "failed", "shed"]
_COUNTERS = {  # edge_maas_worker_requests_<outcome>_total
    "served": "Requests answered with outputs",
    "failed": "Requests answered with an error (bad request, unknown manifest, deadline passed while queued, ...)",
    "shed": "Requests refused at once because the queue was full (max_queue): the device runs the stages itself",
}
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # requests per batch (max_batch is at most 1024)


class WorkerMetrics(Endpoint):
    what = "worker"

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
        self._batch = Histogram("edge_maas_worker_batch_size", "Requests run together in one batch (dynamic "
                                "batching; one observation per batch)", buckets=BATCH_BUCKETS, **labels)  # fmt: skip
        self._worker = worker
        for c in self._count.values():
            c.labels(worker)  # exported as 0 from the start: rate() needs the series before the first event
        self._latency.labels(worker)
        self._batch.labels(worker)

    def count(self, outcome: Outcome) -> None:
        self._count[outcome].labels(self._worker).inc()

    def answered(self, seconds: float) -> None:
        self._latency.labels(self._worker).observe(seconds)

    def batch(self, size: int) -> None:
        """One batch of ``size`` requests was run."""
        self._batch.labels(self._worker).observe(size)
