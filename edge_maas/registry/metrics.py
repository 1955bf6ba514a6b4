"""The registry's Prometheus metrics (`edge-maas registry serve --metrics-port N`): chunk requests answered, bytes
sent, refusals; the releases and desired states in its catalog; the devices it knows (their retained reported
states) and how many are online.  Everything is read at scrape time from the blob server's counters, the catalog
and a FleetWatch, so nothing goes stale and nothing is counted twice."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge_maas.metrics_http import Endpoint
from edge_maas.registry.fleet import FleetWatch
from edge_maas.registry.service import Registry
from edge_maas.transport.chunks import BlobServer


class RegistryMetrics(Endpoint):
    what = "registry"

    def __init__(self, registry: Registry, server: BlobServer, fleet: FleetWatch):
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(registry, server, fleet))


class _Collector(Collector):
    def __init__(self, registry: Registry, server: BlobServer, fleet: FleetWatch):
        self.reg, self.server, self.fleet = registry, server, fleet

    def collect(self):
        s = self.server
        for name, doc, value in (
            ("chunk_requests", "Chunk requests received (each asks for a window of chunks of one blob)", s.requests),
            ("chunks_sent", "Chunks published to fetchers", s.served_chunks),
            ("bytes_sent", "Bytes of chunk bodies published to fetchers", s.served_bytes),
            ("chunk_refusals", "Chunk requests answered with an error (unknown or corrupt blob, chunks too large)",
             s.refused),
            ("chunk_malformed", "Chunk requests dropped unread (malformed)", s.rejected),
        ):  # fmt: skip
            c = CounterMetricFamily(f"edge_maas_registry_{name}", doc)
            c.add_metric([], value)
            yield c
        versions = self.reg.catalog.versions()
        rel = GaugeMetricFamily("edge_maas_registry_releases", "Published versions in the catalog (each "
                                "`registry publish` of a new MODEL@VERSION adds one)", labels=["model"])  # fmt: skip
        per: dict[str, int] = {}
        for v in versions:
            per[v.model] = per.get(v.model, 0) + 1
        for model, n in sorted(per.items()):
            rel.add_metric([model], n)
        yield rel
        desired = GaugeMetricFamily("edge_maas_registry_desired_states", "Devices with a signed desired state")
        desired.add_metric([], len(self.reg.catalog.desired_states()))
        yield desired
        states = self.fleet.snapshot()
        devices = GaugeMetricFamily("edge_maas_registry_devices", "Devices known from their retained reported "
                                    "state, by status (online, offline)", labels=["status"])  # fmt: skip
        for status in ("online", "offline"):
            devices.add_metric([status], sum(st.status == status for st in states.values()))
        yield devices
        running = GaugeMetricFamily("edge_maas_registry_devices_running", "Devices reporting that they run a "
                                    "version, by model and version", labels=["model", "version"])  # fmt: skip
        counts: dict[tuple[str, str], int] = {}
        for st in states.values():
            if st.model and st.version:
                counts[(st.model, st.version)] = counts.get((st.model, st.version), 0) + 1
        for (model, version), n in sorted(counts.items()):
            running.add_metric([model, version], n)
        yield running
