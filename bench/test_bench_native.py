"""Native executor vs the interpreter, single thread, per zoo model.

    .venv/bin/python -m pytest bench/test_bench_native.py --benchmark-enable

Each group holds one model run three ways in the same session: the interpreter
with XNNPACK (the baseline of the DESIGN.md target), the interpreter's built-in
kernels without delegates, and the native executor.  The MLP group is the
per-call overhead comparison (the model is ~10 kMAC).  test_memory records
resident-memory growth (VmRSS, after imports) from loading and running the
model in a fresh process per backend, as extra_info, with the native arena,
scratch and packed-weight sizes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from edge_maas.kernels import executor as ex

from edge_maas import zoo
from edge_maas.backends.litert import LiteRTBackend
from edge_maas.backends.native import NativeBackend

RUNNERS = ["litert_xnnpack", "litert_builtin", "native", "accel"]


def _runner(kind: str, blob: bytes):
    if kind == "native":
        return NativeBackend(blob, threads=1)
    if kind == "accel":  # torch accumulators: on this machine's CPU (no GPU), float64
        pytest.importorskip("torch")
        from edge_maas.backends.accel import AccelBackend

        return AccelBackend(blob, threads=1)
    return LiteRTBackend(blob, threads=1, xnnpack=kind == "litert_xnnpack")


@pytest.mark.parametrize("kind", RUNNERS)
@pytest.mark.parametrize("name", zoo.names())
def test_call(benchmark, name, kind):
    blob = zoo.model_bytes(name)
    runner = _runner(kind, blob)
    benchmark.group = f"native-vs-interpreter {name}"
    benchmark.extra_info["isa"] = ex.isa() if kind == "native" else "-"
    if kind == "accel":
        benchmark.extra_info["device"] = runner.device
    xs, _ = zoo.expected(name)
    feed = {runner.inputs[0].name: xs[0][None]}
    runner.run(feed)
    out = benchmark(runner.run, feed)
    assert out[runner.outputs[0].name].dtype == np.int8


@pytest.mark.parametrize("name", zoo.names())
def test_native_portable_path(benchmark, name):
    """The portable C path on the same model, for the SIMD speed-up."""
    blob = zoo.model_bytes(name)
    runner = NativeBackend(blob)
    benchmark.group = f"native-vs-interpreter {name}"
    xs, _ = zoo.expected(name)
    feed = {runner.inputs[0].name: xs[0][None]}
    before = ex.isa()
    ex.set_isa("portable")
    try:
        benchmark(runner.run, feed)
    finally:
        ex.set_isa(before)


_MEMORY_PROBE = r"""
import gc, json, sys
import numpy as np
from edge_maas import zoo
from edge_maas.backends.litert import LiteRTBackend
from edge_maas.backends.native import NativeBackend
kind, name = sys.argv[1], sys.argv[2]
blob = zoo.model_bytes(name)
def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
gc.collect()
base = rss_kib()
info = {}
if kind != "none":
    r = NativeBackend(blob) if kind == "native" else LiteRTBackend(blob, xnnpack=kind == "litert_xnnpack")
    xs, _ = zoo.expected(name)
    for _ in range(5):
        r.run({r.inputs[0].name: xs[0][None]})
    if kind == "native":
        info = r.memory
gc.collect()
info["rss_growth_kib"] = rss_kib() - base
print(json.dumps(info))
"""


@pytest.mark.parametrize("name", zoo.names())
def test_memory(benchmark, name):
    """Resident memory growth from loading and running the model, per backend (fresh processes)."""
    benchmark.group = "memory (RSS growth, KiB; see extra_info)"

    def probe(kind):
        out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, kind, name], capture_output=True, text=True,
                             check=True)  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    results = benchmark.pedantic(lambda: {k: probe(k) for k in RUNNERS}, rounds=1, iterations=1)
    for k, v in results.items():
        benchmark.extra_info[k] = v
