"""Offload latency vs emulated link: all-local, all-remote, every split (the oracle) and the
planner's choice, MobileNetV2 in 4 shards (edge_maas/offload_bench.py; also
`edge-maas bench offload --runs 3`, which adds the PNG).

    .venv/bin/python -m pytest bench/test_bench_offload.py --benchmark-enable -s

Writes out/offload.json.  Acceptance (issue 15): three runs in a row, the planner within 10% of
the oracle at every one of the five link settings in every run; the report says how often the
planner picked the oracle's split.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_maas import offload_bench as ob

RUNS = 3


def test_offload_planner_vs_oracle(benchmark):
    report = ob.measure(ob.Setup(), ob.SETTINGS, runs=RUNS)
    out = Path(__file__).resolve().parents[1] / "out"
    out.mkdir(exist_ok=True)
    (out / "offload.json").write_text(json.dumps(report, indent=2) + "\n")
    ob.plot(report, out / "offload.png")
    benchmark.extra_info.update(report["settings"])
    benchmark.pedantic(lambda: None, rounds=1)
    for i, run in enumerate(report["runs"]):
        for name, r in run.items():
            assert r["planner_vs_oracle"] <= 1.10, (i, name, r)
    assert report["acceptance"]["within_10pct_every_setting_every_run"]
