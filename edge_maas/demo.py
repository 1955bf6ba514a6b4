"""The end-to-end demo: split a zoo model, run it as a pipeline, check it, report."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from edge_maas import zoo
from edge_maas.backends import make_backend
from edge_maas.datasets import digits_test_int8
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.costs import graph_macs
from edge_maas.pipeline import Pipeline
from edge_maas.tflite import load_graph


def _digits_inputs(spec, quant):
    """The held-out digits as int8, or None when scikit-learn is absent or the
    model does not take 8x8 images."""
    if spec.shape != (1, 64):
        return None
    try:
        return digits_test_int8(quant.scale[0], quant.zero_point[0])
    except ImportError:
        return None


def run_demo(model: Path | None, shards: int, out: Path | None, backend: str, options: dict,
             broker: str | None = None, mqtt: bool = True, services: bool = True) -> int:
    model = model or zoo.model_path("mlp_digits")
    source = model.read_bytes()
    graph = load_graph(source)
    out_dir = out or Path(tempfile.mkdtemp(prefix="edge_maas_demo_"))
    t0 = time.perf_counter()
    manifest = split_model(graph, plan_balanced(graph, shards, graph_macs(graph)), out_dir, model.stem, "1", source)
    t_split = time.perf_counter() - t0
    print(f"[split]    {model.name}: {len(graph.ops)} ops -> {len(manifest.shards)} shards in {t_split * 1e3:.1f} ms "
          f"({sum(s.size for s in manifest.shards)} bytes vs {len(source)}) -> {out_dir}")
    for s in manifest.shards:
        print(f"           shard {s.index}: {' '.join(s.ops)} | in {[t.name for t in s.inputs]}")

    pipe = Pipeline.from_manifest(out_dir / "manifest.json", backend, **options)
    whole = make_backend("litert", source, **options)
    in_spec, out_spec = pipe.inputs[0], pipe.outputs[0]
    digits = _digits_inputs(in_spec, graph.tensors[graph.inputs[0]].quant)
    if digits is not None:
        xs, labels = digits
    else:
        rng = np.random.default_rng(0)
        xs = rng.integers(-128, 128, size=(64, *in_spec.shape), dtype=np.int8)
        labels = None
    same = hits = 0
    t_whole = t_pipe = 0.0
    for i, x in enumerate(xs):
        t0 = time.perf_counter()
        y_whole = whole.run({in_spec.name: x})[out_spec.name]
        t1 = time.perf_counter()
        y_pipe = pipe.run({in_spec.name: x})[out_spec.name]
        t_pipe += time.perf_counter() - t1
        t_whole += t1 - t0
        same += int(np.array_equal(y_whole, y_pipe))
        if labels is not None:
            hits += int(np.argmax(y_pipe) == labels[i])
    # Golden outputs were made on the interpreter's built-in kernels (XNNPACK may
    # differ by 1 LSB), so the health check runs the shards there.
    checker = Pipeline.from_manifest(out_dir / "manifest.json", "litert", xnnpack=False) if backend == "litert" else pipe
    golden = {t.name: t.to_array() for t in manifest.golden.inputs}
    got = checker.run(golden)
    golden_ok = all(np.array_equal(got[t.name], t.to_array()) for t in manifest.golden.outputs)
    print(f"[run]      {len(xs)} requests on backend={backend}: pipeline == whole model byte for byte "
          f"on {same}/{len(xs)}")
    if labels is not None:
        print(f"[accuracy] held-out digits, int8 pipeline: {hits / len(xs):.4f} ({hits}/{len(xs)})")
    print(f"[latency]  whole {t_whole / len(xs) * 1e6:.1f} us/call, pipeline {t_pipe / len(xs) * 1e6:.1f} us/call")
    print(f"[health]   golden pair from the manifest, built-in kernels: {'ok' if golden_ok else 'MISMATCH'}")
    ok = same == len(xs) and golden_ok
    if mqtt:
        from edge_maas.demo_mqtt import run_mqtt_demo

        # the whole model on built-in kernels is the reference the device must reproduce
        ref = make_backend("litert", source, xnnpack=False)
        want = [ref.run({in_spec.name: x}) for x in xs]
        ok = run_mqtt_demo(out_dir, broker, backend, options, xs, want) and ok
        if services:
            from edge_maas.demo_service import run_service_demo

            ok = run_service_demo(broker, backend) and ok
    return 0 if ok else 1
