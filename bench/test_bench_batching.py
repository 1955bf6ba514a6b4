"""Worker throughput with dynamic batching vs batch size 1: 16 concurrent requesters (each
its own MQTT client, closed loop: send, wait for the reply, send again) offload the whole
model (split 0) to one worker process on a loopback Mosquitto.

Workloads: three zoo models (convolutional: compute-bound per sample on a CPU, so
batching has little to amortize) and `fc_head`, a synthetic 8 MB int8 MLP
(1024-4096-1024-10, random weights: a transformer FFN block at d=1024) standing for a
weight-bound cloud stage: batch 1
streams every weight once per request, a batch streams them once per batch.

    .venv/bin/python -m pytest bench/test_bench_batching.py --benchmark-enable -s

The worker runs the interpreter's built-in kernels (bit-exact), one thread, as
`edge-maas worker` in its own process.  Writes out/batching.json.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_maas import zoo
from edge_maas.backends.remote import RemoteSplit
from edge_maas.manifest import Manifest
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.costs import graph_macs
from edge_maas.pipeline import Pipeline
from edge_maas.registry import signing
from edge_maas.registry.service import Registry
from edge_maas.tflite import load_graph
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.local_broker import Mosquitto
from edge_maas.transport.messages import WorkerStatus

REQUESTERS = 16
MODELS = {"fc_head": 3.0, "mlp_digits": 2.0, "ds_cnn_kws": 3.0, "mobilenetv2_035_96": 4.0}  # seconds per measurement
OUT = Path(__file__).resolve().parents[1] / "out" / "batching.json"
RESULTS: dict = {}


def fc_head() -> bytes:
    """int8 MLP 1024-4096-1024-10 (ReLU, per-tensor scales), random weights, built in code."""
    from edge_maas.tflite.builder import Op, T, build_model

    rng = np.random.default_rng(0)
    dims = [1024, 4096, 1024, 10]
    tensors, ops, prev = [T("x", (1, dims[0]), "int8", [0.05], [0])], [], "x"
    for i, (k, n) in enumerate(itertools.pairwise(dims)):
        w_s, last = 0.02 / np.sqrt(k), i == len(dims) - 2
        tensors += [T(f"w{i}", (n, k), "int8", [w_s], [0], 0, rng.integers(-127, 128, (n, k), dtype=np.int8)),
                    T(f"b{i}", (n,), "int32", [0.05 * w_s], [0], 0, rng.integers(-2000, 2000, n).astype(np.int32)),
                    T(f"h{i}", (1, n), "int8", [0.05], [0 if last else -128])]  # fmt: skip
        ops.append(Op("FULLY_CONNECTED", [prev, f"w{i}", f"b{i}"], [f"h{i}"], "FullyConnectedOptions",
                      dict(fusedActivationFunction=0 if last else 1)))  # fmt: skip
        prev = f"h{i}"
    return build_model(tensors, ops, ["x"], [prev])


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batching")
    broker = Mosquitto(tmp).start()
    pub = signing.new_key(tmp / "k")
    reg = Registry(tmp / "reg", tmp / "k")
    rc = MqttClient(broker.url, "registry").start()
    reg.serve(rc)
    yield tmp, broker, reg, pub
    rc.stop()
    broker.stop()
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(RESULTS, indent=2) + "\n")


def _worker(tmp, broker, pub, name, max_batch, delay_ms):
    p = subprocess.Popen([sys.executable, "-m", "edge_maas.cli", "worker", "--name", name, "--broker", broker.url,
                          "--registry-key", str(pub), "--cache", str(tmp / name), "--threads", "1",
                          "--max-batch", str(max_batch), "--max-delay-ms", str(delay_ms), "--status-every", "0.2"],
                         stdout=subprocess.PIPE)  # fmt: skip
    assert p.stdout.readline()
    return p


def _throughput(broker, local, model, rec, seconds):
    """Requests per second completed by REQUESTERS closed-loop clients, and every reply checked."""
    rng = np.random.default_rng(0)
    x = [{s.name: rng.integers(-128, 128, s.shape, dtype=np.int8) for s in local.inputs} for _ in range(REQUESTERS)]
    want = [local.run(xi) for xi in x]
    devs = [RemoteSplit(MqttClient(broker.url, f"req{i}").start(), local, model, rec.manifest_sha256,
                        rec.manifest_size, deadline_s=30.0) for i in range(REQUESTERS)]  # fmt: skip
    for i, d in enumerate(devs):  # warm up: the worker installs the model, builds its batch sizes
        d.run(x[i], 0)
    done = [0] * REQUESTERS
    wrong: list[str] = []
    stop = time.perf_counter() + seconds
    start = threading.Barrier(REQUESTERS + 1)

    def loop(i):
        start.wait()
        while time.perf_counter() < stop:
            out, where = devs[i].run(x[i], 0)
            if not where.startswith("remote") or any(not np.array_equal(out[k], v) for k, v in want[i].items()):
                wrong.append(where)
            done[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(REQUESTERS)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    rate = sum(done) / (time.perf_counter() - t0)
    for d in devs:
        d.client.stop()
    assert not wrong, f"{len(wrong)} replies wrong or not remote: {wrong[:3]}"
    return rate


CONFIGS = {"batch1": (1, 0.0), "batch16_0ms": (REQUESTERS, 0.0), "batch16_2ms": (REQUESTERS, 2.0)}


@pytest.mark.parametrize("model", list(MODELS))
def test_dynamic_batching_throughput(benchmark, cloud, model):
    tmp, broker, reg, pub = cloud
    blob = fc_head() if model == "fc_head" else zoo.model_bytes(model)
    g = load_graph(blob)
    split_model(g, plan_balanced(g, 2, graph_macs(g)), tmp / model, model, source_bytes=blob)
    rec = reg.publish(tmp / model)
    local = Pipeline.from_loaded(Manifest.load(tmp / model / "manifest.json"), tmp / model, "litert", xnnpack=False)
    result = {}
    for label, (max_batch, delay_ms) in CONFIGS.items():
        name = f"{model}-{label}"
        status: list[WorkerStatus] = []
        monitor = MqttClient(broker.url, f"monitor-{name}").start()
        monitor.subscribe(topics.worker_status(name), lambda t, p: status.append(WorkerStatus.model_validate_json(p)))
        w = _worker(tmp, broker, pub, name, max_batch, delay_ms)
        try:
            rate = _throughput(broker, local, model, rec, MODELS[model])
            time.sleep(0.5)  # one more status report
        finally:
            w.terminate()
            w.wait(timeout=10)
            monitor.stop()
        last = next(st for st in reversed(status) if st.stages)
        result[label] = {"requests_per_s": round(rate, 1), "mean_batch": round(last.stages[0].mean_batch, 2),
                         "worker_ms_per_request": [round(x.ms_per_request, 3) for x in last.stages]}  # fmt: skip
    base = result["batch1"]["requests_per_s"]
    for label in CONFIGS:
        result[label]["speedup_vs_batch1"] = round(result[label]["requests_per_s"] / base, 2)
    RESULTS[model] = result
    print(f"\n{model}: {json.dumps(result)}")
    benchmark.extra_info.update(result)
    benchmark.pedantic(lambda: None, rounds=1)
    if model == "fc_head":  # the acceptance line: weight-bound stages gain >= 2x from batching
        assert result["batch16_0ms"]["speedup_vs_batch1"] >= 2.0, result
