"""Composition overhead of split pipelines, and split time, per zoo model.

    .venv/bin/python -m pytest bench --benchmark-enable

Groups pair each whole model (the baseline) with its 3-shard and every-op
pipelines in the same run, so ratios are read within one group.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_maas import zoo
from edge_maas.backends.litert import LiteRTBackend
from edge_maas.partition import plan_balanced, plan_every_op, split_model
from edge_maas.partition.costs import graph_macs
from edge_maas.pipeline import Pipeline
from edge_maas.tflite import load_graph


@pytest.mark.parametrize("xnnpack", [False, True], ids=["builtin", "xnnpack"])
@pytest.mark.parametrize("layout", ["whole", "shards3", "every_op"])
@pytest.mark.parametrize("name", zoo.names())
def test_call(benchmark, name, layout, xnnpack, tmp_path):
    blob = zoo.model_bytes(name)
    g = load_graph(blob)
    benchmark.group = f"call {name} {'xnnpack' if xnnpack else 'builtin'}"
    if layout == "whole":
        runner = LiteRTBackend(blob, xnnpack=xnnpack)
    else:
        plan = plan_balanced(g, 3, graph_macs(g)) if layout == "shards3" else plan_every_op(g)
        split_model(g, plan, tmp_path, name, source_bytes=blob)
        runner = Pipeline.from_manifest(tmp_path / "manifest.json", xnnpack=xnnpack)
    xs, _ = zoo.expected(name)
    feed = {runner.inputs[0].name: xs[0][None]}
    runner.run(feed)
    out = benchmark(runner.run, feed)
    assert out[runner.outputs[0].name].dtype == np.int8


@pytest.mark.parametrize("name", zoo.names())
def test_split_time(benchmark, name, tmp_path):
    blob = zoo.model_bytes(name)
    benchmark.group = "split (3 shards, load + plan + write + golden)"

    def split():
        g = load_graph(blob)
        return split_model(g, plan_balanced(g, 3, graph_macs(g)), tmp_path, name, source_bytes=blob)

    m = benchmark.pedantic(split, rounds=5, iterations=1, warmup_rounds=1)
    assert len(m.shards) == 3
