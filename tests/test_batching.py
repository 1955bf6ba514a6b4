"""Dynamic batching: a batched run gives each request exactly the bytes it gets alone, on
every zoo model (split in 3); graphs that hard-code batch 1 fall back to one by one."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ZOO_NAMES, zoo_bytes

from edge_maas.manifest import Manifest
from edge_maas.partition import plan_balanced, split_model
from edge_maas.partition.costs import graph_macs
from edge_maas.pipeline import Pipeline
from edge_maas.tflite import load_graph


def _split(name, tmp_path, shards=3):
    blob = zoo_bytes(name)
    g = load_graph(blob)
    split_model(g, plan_balanced(g, shards, graph_macs(g)), tmp_path, name, source_bytes=blob)
    return Pipeline.from_loaded(Manifest.load(tmp_path / "manifest.json"), tmp_path, "litert", xnnpack=False)


def _inputs(specs, n, seed):
    rng = np.random.default_rng(seed)
    return [{s.name: rng.integers(-128, 128, s.shape, dtype=np.int8) for s in specs} for _ in range(n)]


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_batched_run_is_bit_exact(name, tmp_path):
    pipe = _split(name, tmp_path)
    for n, seed in ((16, 0), (3, 1)):
        xs = _inputs(pipe.inputs, n, seed)
        stage_s: list[float] = []
        got = pipe.run_batch(xs, stage_s)
        assert len(got) == n and len(stage_s) == len(pipe.stages)
        for x, out in zip(xs, got):
            want = pipe.run(x)
            assert out.keys() == want.keys()
            assert all(np.array_equal(out[k], want[k]) and out[k].shape == want[k].shape for k in want)
    batching = [st.batched(16) is not None for st in pipe.stages]
    assert any(batching), "no stage of this model batches: the batched path was never exercised"


def test_suffixes_batch_too(tmp_path):
    pipe = _split("mobilenetv2_035_96", tmp_path, shards=4)
    for k in range(1, 4):
        suffix = pipe.suffix(k)
        envs = [pipe.run_prefix(x, k) for x in _inputs(pipe.inputs, 5, k)]
        feeds = [{s.name: e[s.name] for s in suffix.inputs} for e in envs]
        for feed, out in zip(feeds, suffix.run_batch(feeds)):
            assert all(np.array_equal(out[n], v) for n, v in suffix.run(feed).items())


def test_a_graph_that_hard_codes_batch_one_runs_one_by_one(tmp_path):
    """branchy_cnn's squeeze-excite block reshapes to a constant [1, ...]: the interpreter
    refuses batch 16 for that shard, which then runs sample by sample, still exact."""
    whole = _split("branchy_cnn", tmp_path, shards=1)
    assert whole.stages[0].batched(16) is None
    xs = _inputs(whole.inputs, 4, 2)
    for x, out in zip(xs, whole.run_batch(xs)):
        assert all(np.array_equal(out[k], v) for k, v in whole.run(x).items())



def test_a_broadcast_across_ranks_is_never_batched(tmp_path):
    """branchy_cnn's squeeze-excite gate (1, C) scales features (1, H, W, C).  Resized to batch 8 the interpreter
    still runs it (W is 8), but the gate's batch dimension then lines up with W and samples mix: seeds 19 and 24
    came out 1 LSB off.  Such a stage runs sample by sample, and every sample keeps its bytes."""
    pipe = _split("branchy_cnn", tmp_path)
    suffix = pipe.suffix(1)
    assert [st.batched(8) is None for st in suffix.stages] == [False, True]
    feeds = []
    for seed in range(16, 32):
        x = {s.name: np.random.default_rng(seed).integers(-128, 128, s.shape, dtype=np.int8) for s in pipe.inputs}
        env = pipe.run_prefix(x, 1)
        feeds.append({s.name: env[s.name] for s in suffix.inputs})
    for start in (0, 8):
        for feed, out in zip(feeds[start : start + 8], suffix.run_batch(feeds[start : start + 8])):
            assert all(np.array_equal(out[n], v) for n, v in suffix.run(feed).items())
