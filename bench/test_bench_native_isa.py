"""Native executor per instruction-set path vs the interpreter (built-in kernels, XNNPACK), single thread.

    .venv/bin/python -m pytest bench/test_bench_native_isa.py --benchmark-enable --benchmark-min-rounds=20 \
        -k mobilenetv2_035_96

One group per zoo model: the interpreter both ways and native on every path this CPU has
(edge_maas.kernels.executor.available_isas(): portable, avx2, avxvnni, avx512vnni), so the
ratios come from one run.
"""

from __future__ import annotations

import pytest
from edge_maas.kernels import executor as ex

from edge_maas import zoo
from edge_maas.backends.litert import LiteRTBackend
from edge_maas.backends.native import NativeBackend

RUNNERS = ["litert_xnnpack", "litert_builtin", *(f"native_{name}" for name in ex.available_isas())]


@pytest.mark.parametrize("kind", RUNNERS)
@pytest.mark.parametrize("name", zoo.names())
def test_isa(benchmark, name, kind):
    blob = zoo.model_bytes(name)
    native = kind.startswith("native_")
    runner = (
        NativeBackend(blob, threads=1) if native else LiteRTBackend(blob, threads=1, xnnpack=kind == "litert_xnnpack")
    )
    benchmark.group = f"per-isa {name}"
    xs, _ = zoo.expected(name)
    feed = {runner.inputs[0].name: xs[0][None]}
    before = ex.isa()
    if native:
        assert ex.set_isa(kind.removeprefix("native_")) == kind.removeprefix("native_")
    try:
        runner.run(feed)
        benchmark(runner.run, feed)
    finally:
        ex.set_isa(before)
