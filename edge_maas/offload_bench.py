"""`edge-maas bench offload`: request latency against link speed for all-local, all-remote,
every split (the best of which is the oracle) and the planner's choice; JSON and a PNG.
The oracle's split is the fastest in a first pass over every split; then planner and
oracle requests alternate, and their medians give `planner_vs_oracle`.

The device runs the native backend on its portable C path with one thread (an edge-class
speed); the worker runs the interpreter's built-in kernels (bit-exact) in the same process,
over a private Mosquitto (or the embedded broker where Mosquitto is not installed).  The
link is emulated in the transport (`backends.remote.Shaper`: rtt + bytes / bandwidth per
exchange): this kernel has no `sch_netem` for `tc netem`.  Every reply is checked against
the all-local bytes."""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_maas import zoo
from edge_maas.backends.remote import RemoteSplit, Shaper
from edge_maas.errors import EdgeMaasError
from edge_maas.manifest import Manifest
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.costs import graph_macs
from edge_maas.pipeline import Pipeline
from edge_maas.planner import Decision, Planner
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.service import Registry
from edge_maas.tflite import load_graph
from edge_maas.transport.client import MqttClient
from edge_maas.worker.worker import Worker

log = logging.getLogger(__name__)

# name -> (rtt seconds, bytes per second)
SETTINGS = {
    "1Mbit_50ms": (0.050, 125_000),
    "3Mbit_30ms": (0.030, 375_000),
    "10Mbit_20ms": (0.020, 1_250_000),
    "30Mbit_5ms": (0.005, 3_750_000),
    "100Mbit_2ms": (0.002, 12_500_000),
}


@dataclass(frozen=True)
class Setup:
    model: str = "mobilenetv2_035_96"
    shards: int = 4
    requests: int = 8  # per measurement (median)
    device_isa: str = "portable"
    codec: str = "none"  # of boundary tensors on the wire


class _Fixed:
    """Always one split (to probe the link), feeding the real planner's estimates."""

    def __init__(self, planner: Planner, split: int):
        self.est, self.split, self.observed = planner.est, split, planner.observed

    def choose(self) -> Decision:
        return Decision(self.split, 0.0, ())


def _median_s(fn: Callable[[], None], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _broker(work: Path):
    from edge_maas.transport.local_broker import MOSQUITTO, Mosquitto

    if shutil.which(MOSQUITTO) or Path(MOSQUITTO).exists():
        return Mosquitto(work).start()
    from edge_maas.transport.embedded_broker import EmbeddedBroker

    return EmbeddedBroker().start()


def measure(setup: Setup = Setup(), settings: dict[str, tuple[float, float]] = SETTINGS,
            progress: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Run the whole experiment; returns the report (also what run() writes as JSON)."""
    from edge_maas.kernels import executor as ex

    work = Path(tempfile.mkdtemp(prefix="edge_maas_offload_bench_"))
    broker = _broker(work)
    clients: list[MqttClient] = []
    before = ex.isa()
    worker = None
    try:
        signing.new_key(work / "k")
        reg = Registry(work / "reg", work / "k")
        blob = zoo.model_bytes(setup.model)
        g = load_graph(blob)
        split_model(g, plan_balanced(g, setup.shards, graph_macs(g)), work / "split", setup.model, source_bytes=blob)
        rec = reg.publish(work / "split")
        clients.append(MqttClient(broker.url, "registry").start())
        reg.serve(clients[-1])
        clients.append(MqttClient(broker.url, "worker").start())
        worker = Worker("worker", clients[-1], BlobStore(work / "wcache"), signing.load_public(work / "k.pub"),
                        options={"xnnpack": False, "threads": 1})  # fmt: skip
        local = Pipeline.from_loaded(Manifest.load(work / "split" / "manifest.json"), work / "split", "native")
        ex.set_isa(setup.device_isa)
        x = {s.name: np.random.default_rng(0).integers(-128, 128, s.shape, dtype=np.int8) for s in local.inputs}
        want = local.run(x)
        n = len(local.stages)
        report: dict = {"setup": {**setup.__dict__, "stages": n, "link": "emulated in the transport (Shaper)",
                                  "worker": "interpreter built-in kernels, 1 thread"}, "settings": {}}  # fmt: skip

        def checked(out, where):
            if any(not np.array_equal(out[k], v) for k, v in want.items()):
                raise EdgeMaasError(f"offloaded result ({where}) differs from all-local")
            return where

        for name, (rtt, bw) in settings.items():
            clients.append(MqttClient(broker.url, f"dev-{name}").start())
            dev = RemoteSplit(clients[-1], local, setup.model, rec.manifest_sha256, rec.manifest_size,
                              deadline_s=10.0, shaper=Shaper(rtt, bw), codec=setup.codec)  # fmt: skip
            per_split = {}
            for k in range(n + 1):
                checked(*dev.run(x, k))  # warm: the worker installs the model once
                per_split[k] = _median_s(lambda k=k: checked(*dev.run(x, k)), setup.requests)
            planner = Planner.for_pipeline(local, x)
            for k in (0, n - 1):  # seed RTT / bandwidth with both ends (different sizes)
                for _ in range(3):
                    dev.run_planned(x, _Fixed(planner, k))
            choices: list[int] = []

            def planned(dev=dev, planner=planner, choices=choices):
                out, where, d = dev.run_planned(x, planner)
                checked(out, where)
                choices.append(d.split)

            best = min(per_split, key=per_split.get)
            # planner and oracle split alternate, so that this machine's drift hits both alike
            planner_t, oracle_t = [], []
            for _ in range(setup.requests):
                planner_t.append(_median_s(planned, 1))
                oracle_t.append(_median_s(lambda: checked(*dev.run(x, best)), 1))
            planner_s, oracle_s = statistics.median(planner_t), statistics.median(oracle_t)
            r = {
                "rtt_ms": rtt * 1e3, "bandwidth_mbps": bw * 8 / 1e6,
                "every_split_ms": {str(k): round(v * 1e3, 2) for k, v in per_split.items()},
                "all_local_ms": round(per_split[n] * 1e3, 2), "all_remote_ms": round(per_split[0] * 1e3, 2),
                "oracle_split": best, "oracle_ms": round(oracle_s * 1e3, 2),
                "planner_splits": choices, "planner_ms": round(planner_s * 1e3, 2),
                "planner_vs_oracle": round(planner_s / oracle_s, 3),
                "planner_picked_oracle_split": round(sum(c == best for c in choices) / len(choices), 2),
                "estimates": {"rtt_ms": round(planner.est.rtt_s * 1e3, 2),
                              "bandwidth_mbps": round(planner.est.bandwidth_Bps * 8 / 1e6, 2)},
            }  # fmt: skip
            report["settings"][name] = r
            progress(f"{name}: all-local {r['all_local_ms']} ms, all-remote {r['all_remote_ms']} ms, "
                     f"oracle split {best} {r['oracle_ms']} ms, planner {r['planner_ms']} ms "
                     f"({r['planner_vs_oracle']}x oracle)")  # fmt: skip
        return report
    finally:
        ex.set_isa(before)
        if worker is not None:
            worker.close()
        for c in clients:
            c.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def plot(report: dict, path: Path) -> None:
    """Latency against bandwidth, one line per strategy (log-log)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgeMaasError("the plot needs matplotlib: pip install matplotlib (or the [test] extra)") from None
    rows = sorted(report["settings"].values(), key=lambda r: r["bandwidth_mbps"])
    bw = [r["bandwidth_mbps"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label, style in (("all_local_ms", "all local", "s-"), ("all_remote_ms", "all remote", "^-"),
                              ("oracle_ms", "oracle (best split)", "o--"), ("planner_ms", "planner", "x-")):  # fmt: skip
        ax.plot(bw, [r[key] for r in rows], style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(bw, [f"{b:g} Mbit/s\n{r['rtt_ms']:g} ms" for b, r in zip(bw, rows)])
    ax.set_xlabel("emulated link (bandwidth, RTT)")
    ax.set_ylabel("median request latency (ms)")
    s = report["setup"]
    ax.set_title(f"{s['model']} in {s['stages']} shards: device native/{s['device_isa']}, worker interpreter, "
                 f"codec {s['codec']}", fontsize=10)  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(out_dir: Path, setup: Setup = Setup(), settings: dict = SETTINGS) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = measure(setup, settings)
    js, png = out_dir / "offload.json", out_dir / "offload.png"
    js.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, png)
    return js, png
