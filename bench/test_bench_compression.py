"""Boundary-tensor compression: size ratio and encode+decode time of zlib (levels 1 and 6)
and the RLE kernel on the bytes a device would send at every split of every zoo model
in 4 shards (edge_maas/transport/compression.py).

    .venv/bin/python -m pytest bench/test_bench_compression.py --benchmark-enable -s

Writes out/compression.json.  The body at split k is what RemoteSplit sends: the
packed suffix(k).inputs (split 0 is the model input itself).  Inputs are the zoo's
committed test inputs (seeded random int8, the distribution the synthetic models were
trained on), and for mlp_digits the held-out digits; ratios are the median over
INPUTS of them, times the best of REPEATS on the first.  For each link the JSON says
whether the bytes saved on the wire (at that bandwidth) outweigh encode + decode here
(a device CPU is slower than this machine: treat `pays` as optimistic for the encoder).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from edge_maas import zoo
from edge_maas.manifest import Manifest
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.costs import graph_macs
from edge_maas.pipeline import Pipeline
from edge_maas.tflite import load_graph
from edge_maas.transport.compression import compress, decompress
from edge_maas.transport.messages import pack_tensors

SHARDS = 4
INPUTS = 8
REPEATS = 5
MIN_LOOP_S = 0.002  # each timing repeats the round trip for at least this long
LINKS = {"1Mbit": 125_000, "10Mbit": 1_250_000, "100Mbit": 12_500_000}  # bytes per second

CODECS = {
    "zlib1": (lambda b: compress(b, "zlib"), lambda d, n: decompress(d, "zlib", n)),
    "zlib6": (lambda b: zlib.compress(b, 6), lambda d, n: decompress(d, "zlib", n)),
    "rle": (lambda b: compress(b, "rle"), lambda d, n: decompress(d, "rle", n)),
}


def _inputs(name: str, g, spec) -> list[np.ndarray]:
    if name == "mlp_digits":
        try:
            from edge_maas.datasets import digits_test_int8

            quant = g.tensors[g.inputs[0]].quant
            q, _ = digits_test_int8(quant.scale[0], quant.zero_point[0])
            return [row.reshape(spec.shape) for row in q[:INPUTS]]
        except ImportError:
            pass
    xs, _ = zoo.expected(name)
    return [x.reshape(spec.shape) for x in xs[:INPUTS]]


def _round_trip_us(enc, dec, body: bytes) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        n, t0 = 0, time.perf_counter()
        while True:
            data = enc(body)
            out = dec(data, len(body))
            n += 1
            dt = time.perf_counter() - t0
            if dt >= MIN_LOOP_S:
                break
        best = min(best, dt / n)
    assert out == body
    return best * 1e6


def _bodies(name: str, work: Path) -> tuple[list[list[bytes]], list[dict]]:
    """bodies[input][split] and a description of each split's tensors."""
    blob = zoo.model_bytes(name)
    g = load_graph(blob)
    split_model(g, plan_balanced(g, SHARDS, graph_macs(g)), work, name, source_bytes=blob)
    pipe = Pipeline.from_loaded(Manifest.load(work / "manifest.json"), work, "litert", xnnpack=False)
    try:
        n = len(pipe.stages)
        bodies = []
        for x in _inputs(name, g, pipe.inputs[0]):
            env = pipe.run_prefix({pipe.inputs[0].name: x}, n - 1)
            bodies.append([pack_tensors({s.name: env[s.name] for s in pipe.suffix(k).inputs})[1] for k in range(n)])
        tensors = [[f"{s.name} {list(s.shape)} {s.dtype}" for s in pipe.suffix(k).inputs] for k in range(n)]
        return bodies, tensors
    finally:
        pipe.close()


def measure() -> dict:
    timing = f"best of {REPEATS}, encode+decode, this machine"
    report: dict = {"setup": {"shards": SHARDS, "inputs": INPUTS, "timing": timing, "links_bytes_per_s": LINKS}}
    report["models"] = {}
    for name in zoo.names():
        with tempfile.TemporaryDirectory(prefix="edge_maas_compression_") as tmp:
            bodies, tensors = _bodies(name, Path(tmp))
        splits = {}
        for k, desc in enumerate(tensors):
            first = bodies[0][k]
            a = np.frombuffer(first, np.uint8)
            mode_frac = float(np.bincount(a, minlength=256).max() / a.size) if a.size else 0.0
            entry: dict = {
                "tensors": desc,
                "bytes": len(first),
                "mode_byte_fraction": round(mode_frac, 3),
                "codecs": {},
            }
            for cname, (enc, dec) in CODECS.items():
                ratio = statistics.median(len(enc(b[k])) / len(b[k]) for b in bodies)  # compressed / raw
                us = _round_trip_us(enc, dec, first)
                saved = len(first) * (1 - ratio)
                entry["codecs"][cname] = {
                    "ratio": round(ratio, 4),
                    "us": round(us, 1),
                    "pays": {link: saved / bw * 1e6 > us for link, bw in LINKS.items()},
                    "net_us": {link: round(saved / bw * 1e6 - us, 1) for link, bw in LINKS.items()},
                }
            splits[str(k)] = entry
        report["models"][name] = splits
    return report


def test_compression_ratio_and_time(benchmark):
    t0 = time.perf_counter()
    report = benchmark.pedantic(measure, rounds=1, iterations=1)
    report["setup"]["wall_s"] = round(time.perf_counter() - t0, 2)
    out = Path(__file__).resolve().parents[1] / "out"
    out.mkdir(exist_ok=True)
    (out / "compression.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = [(m, k, c, v["ratio"], v["us"]) for m, s in report["models"].items() for k, e in s.items()
            for c, v in e["codecs"].items()]  # fmt: skip
    for m, k, c, ratio, us in rows:
        print(f"{m:20s} split {k} {c:6s} ratio {ratio:.3f} {us:9.1f} us")
    assert len(report["models"]) == len(zoo.names())
    for m, s in report["models"].items():
        assert len(s) == SHARDS, m
        for e in s.values():
            assert e["bytes"] > 0
            # RLE never grows a body by more than its bound (n // 64 + 16 bytes)
            assert e["codecs"]["rle"]["ratio"] <= 1 + 1 / 64 + 16 / e["bytes"]
