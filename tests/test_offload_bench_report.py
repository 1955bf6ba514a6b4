"""The offload bench's report (edge_maas/offload_bench.py) on a small model and two emulated links,
two runs in a row: every run's figures are kept, the summary gives their median and spread, how
often the planner picked the oracle's split, and whether it stayed within 10% of the oracle in
every run.  The figures themselves are the bench's business (bench/test_bench_offload.py)."""

from __future__ import annotations

from edge_maas import offload_bench as ob


def test_report_keeps_every_run_and_summarizes_them():
    settings = {"slow": (0.050, 125_000), "fast": (0.002, 12_500_000)}
    lines: list[str] = []
    report = ob.measure(ob.Setup(model="mlp_digits", shards=3, requests=2, pairs=6, warmup=2), settings,
                        progress=lines.append, runs=2)  # fmt: skip
    assert len(report["runs"]) == 2 and all(set(r) == set(settings) for r in report["runs"])
    assert len(lines) == 4 and lines[0].startswith("run 1/2 slow")
    for name, s in report["settings"].items():
        runs = [r[name] for r in report["runs"]]
        assert s["planner_vs_oracle_runs"] == [r["planner_vs_oracle"] for r in runs]
        assert s["planner_vs_oracle_spread"] == round(max(s["planner_vs_oracle_runs"]) - min(s["planner_vs_oracle_runs"]), 3)
        assert 0 <= s["planner_picked_oracle_split"] <= 1 and len(s["oracle_split_runs"]) == 2
        assert s["every_split_ms"] == runs[-1]["every_split_ms"] and s["oracle_split"] == runs[-1]["oracle_split"]
        assert all(len(r["planner_splits"]) == 6 and len(r["planner_warmup_splits"]) == 2 for r in runs)
        assert all(r["estimates"]["exchanges"] >= 6 for r in runs)
    worst = max(r[n]["planner_vs_oracle"] for r in report["runs"] for n in r)
    assert report["acceptance"] == {"within_10pct_every_setting_every_run": worst <= 1.10, "worst": worst, "runs": 2}
    assert len(report["load_before"]) == 3 and len(report["load_after"]) == 3


def test_the_planner_finds_the_oracle_split_of_a_stem_model():
    """stem_cnn_224 cut at every op (a cheap 4x4/4 stem shrinks the 147 KB input to 25 KB, the heavy layers
    follow) on a fast link: the oracle is the fastest split of the first pass, and the planner picks it.

    Until s23 the device's portable C was ~5-10x the worker's built-in kernels, so running the stem here and the
    rest on the worker was the oracle (split 1) and this test asserted that.  Since s23's portable GEMM (gcc
    vectorizes it) the device runs this model in ~3 ms against the worker's ~4 ms plus the link: all-local wins,
    as it would on a device as fast as its worker.  A device slower than its worker is the premise of a middle
    split; test_offload_netlab's CPU-quota device keeps it (a real cgroup quota), this test keeps the planner."""
    settings = {"100Mbit_2ms": ob.SETTINGS["100Mbit_2ms"]}
    report = ob.measure(ob.Setup(model="stem_cnn_224", shards=6, requests=3, pairs=9, warmup=0), settings,
                        progress=lambda _: None)  # fmt: skip
    for name, r in report["runs"][0].items():
        every = {int(k): v for k, v in r["every_split_ms"].items()}
        assert set(every) == set(range(7)) and r["oracle_split"] == min(every, key=every.get), (name, every)
        assert r["planner_picked_oracle_split"] >= 0.75, (name, r["planner_splits"])
