"""Offload latency vs emulated link: all-local, all-remote, every split (the oracle) and the
planner's choice, MobileNetV2 in 4 shards (edge_maas/offload_bench.py; also
`edge-maas bench offload`, which adds the PNG).

    .venv/bin/python -m pytest bench/test_bench_offload.py --benchmark-enable -s

Writes out/offload.json.  Acceptance: the planner within 10% of the oracle at
1 Mbit/s 50 ms, 10 Mbit/s 20 ms and 100 Mbit/s 2 ms.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_maas import offload_bench as ob

ACCEPTANCE = ("1Mbit_50ms", "10Mbit_20ms", "100Mbit_2ms")


def test_offload_planner_vs_oracle(benchmark):
    report = ob.measure(ob.Setup(), ob.SETTINGS)
    out = Path(__file__).resolve().parents[1] / "out"
    out.mkdir(exist_ok=True)
    (out / "offload.json").write_text(json.dumps(report, indent=2) + "\n")
    ob.plot(report, out / "offload.png")
    benchmark.extra_info.update(report["settings"])
    benchmark.pedantic(lambda: None, rounds=1)
    for name in ACCEPTANCE:
        r = report["settings"][name]
        assert r["planner_vs_oracle"] <= 1.10, (name, r)
