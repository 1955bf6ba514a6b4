"""Offload latency vs emulated bandwidth: all-local, all-remote, every split (the oracle)
and the planner's choice, MobileNetV2 in 4 shards.

    .venv/bin/python -m pytest bench/test_bench_offload.py --benchmark-enable -s

Device: the native backend on its portable C path, one thread (an edge-class speed);
worker: the interpreter with XNNPACK, same machine, over a loopback Mosquitto.  The link
is emulated in the transport (`backends.remote.Shaper`: rtt + bytes / bandwidth per
exchange), not with tc netem.  Writes out/offload.json.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from edge_maas.kernels import executor as ex

from edge_maas import zoo
from edge_maas.backends.remote import RemoteSplit, Shaper
from edge_maas.manifest import Manifest
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.costs import graph_macs
from edge_maas.pipeline import Pipeline
from edge_maas.planner import Planner
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.service import Registry
from edge_maas.tflite import load_graph
from edge_maas.transport.client import MqttClient
from edge_maas.transport.local_broker import Mosquitto
from edge_maas.worker.worker import Worker

SETTINGS = {"1Mbit_50ms": (0.050, 125_000), "10Mbit_20ms": (0.020, 1_250_000), "100Mbit_2ms": (0.002, 12_500_000)}
REQUESTS = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("offload")
    broker = Mosquitto(tmp).start()
    pub = signing.new_key(tmp / "k")
    reg = Registry(tmp / "reg", tmp / "k")
    blob = zoo.model_bytes("mobilenetv2_035_96")
    g = load_graph(blob)
    split_model(g, plan_balanced(g, 4, graph_macs(g)), tmp / "split", "mnv2", source_bytes=blob)
    rec = reg.publish(tmp / "split")
    rc = MqttClient(broker.url, "registry").start()
    reg.serve(rc)
    wc = MqttClient(broker.url, "worker").start()
    worker = Worker("worker", wc, BlobStore(tmp / "wcache"), signing.load_public(pub), options={"xnnpack": True})
    local = Pipeline.from_loaded(Manifest.load(tmp / "split" / "manifest.json"), tmp / "split", "native")
    before = ex.isa()
    ex.set_isa("portable")
    yield broker, rec, local
    ex.set_isa(before)
    worker.close()
    for c in (wc, rc):
        c.stop()
    broker.stop()


def _median_latency(fn, n=REQUESTS):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_offload_planner_vs_oracle(benchmark, setup):
    broker, rec, local = setup
    x = {s.name: np.random.default_rng(0).integers(-128, 128, s.shape, dtype=np.int8) for s in local.inputs}
    want = local.run(x)
    report = {}
    for name, (rtt, bw) in SETTINGS.items():
        dev = RemoteSplit(MqttClient(broker.url, f"dev-{name}").start(), local, "mnv2", rec.manifest_sha256,
                          rec.manifest_size, deadline_s=5.0, shaper=Shaper(rtt, bw))  # fmt: skip
        n = len(local.stages)
        per_split = {}
        for k in range(n + 1):
            dev.run(x, k)  # warm the worker's install and caches
            per_split[k] = _median_latency(lambda k=k: dev.run(x, k))
        planner = Planner.for_pipeline(local, x)
        for k in (0, n - 1):  # probe the link at both ends to seed RTT / bandwidth estimates
            for _ in range(3):
                dev.run_planned(x, _Fixed(planner, k))
        choices = []

        def planned():
            out, where, d = dev.run_planned(x, planner)
            choices.append(d.split)
            assert all(np.array_equal(out[k], want[k]) for k in want)

        planner_s = _median_latency(planned)
        best = min(per_split, key=per_split.get)
        report[name] = {
            "every_split_ms": {str(k): round(v * 1e3, 2) for k, v in per_split.items()},
            "all_local_ms": round(per_split[n] * 1e3, 2), "all_remote_ms": round(per_split[0] * 1e3, 2),
            "oracle_split": best, "oracle_ms": round(per_split[best] * 1e3, 2),
            "planner_splits": choices, "planner_ms": round(planner_s * 1e3, 2),
            "planner_vs_oracle": round(planner_s / per_split[best], 3),
            "estimates": {"rtt_ms": round(planner.est.rtt_s * 1e3, 2), "bandwidth_kBps": round(planner.est.bandwidth_Bps / 1e3, 1)},
        }  # fmt: skip
        dev.client.stop()
    Path("out").mkdir(exist_ok=True)
    Path("out/offload.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    benchmark.extra_info.update(report)
    benchmark.pedantic(lambda: None, rounds=1)
    for name, r in report.items():
        assert r["planner_vs_oracle"] <= 1.10, (name, r)


class _Fixed:
    """A planner stand-in that always picks one split (for probing), feeding the real planner."""

    def __init__(self, planner, split):
        self.est, self.split, self.observed = planner.est, split, planner.observed

    def choose(self):
        from edge_maas.planner import Decision

        return Decision(self.split, 0.0, ())
