"""Shards are standalone models holding only what their own ops use."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import zoo_bytes

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.partition import plan_balanced, plan_every_op, split_model
from edge_maas.partition.costs import graph_macs
from edge_maas.tflite import build_submodel, load_graph

PER_SHARD_HEADER = 1024  # flatbuffer tables + boundary tensor metadata, measured at ~400-600 B


@pytest.mark.parametrize("how", ["every_op", "macs_3"])
def test_shards_load_alone_and_hold_only_their_weights(zoo_name, how, tmp_path):
    blob = zoo_bytes(zoo_name)
    g = load_graph(blob)
    plan = plan_every_op(g) if how == "every_op" else plan_balanced(g, 3, graph_macs(g))
    manifest = split_model(g, plan, tmp_path, zoo_name, source_bytes=blob)
    rng = np.random.default_rng(0)
    for shard, spec in zip(manifest.shards, plan.shards):
        data = (tmp_path / shard.file).read_bytes()
        sg = load_graph(data)
        assert [op.op for op in sg.ops] == list(shard.ops)
        # only the constants its own ops read, byte for byte
        assert sg.constant_bytes(range(len(sg.ops))) == g.constant_bytes(spec.ops) == shard.constant_bytes
        assert sum(t.nbytes for t in sg.tensors if t.is_constant) == shard.constant_bytes
        b = LiteRTBackend(data, xnnpack=False)
        feed = {s.name: rng.integers(-128, 128, size=s.shape, dtype=np.int8) for s in b.inputs}
        out = b.run(feed)
        assert [o.name for o in shard.outputs] == list(out)
    total = sum(s.size for s in manifest.shards)
    assert total <= 1.02 * len(blob) + PER_SHARD_HEADER * len(manifest.shards), (total, len(blob))


def test_whole_graph_rewrite_is_identical_in_behaviour(zoo_name):
    blob = zoo_bytes(zoo_name)
    g = load_graph(blob)
    again = build_submodel(g, range(len(g.ops)), g.inputs, g.outputs)
    assert abs(len(again) - len(blob)) < 0.02 * len(blob) + 4096
    a, b = LiteRTBackend(blob, xnnpack=False), LiteRTBackend(again, xnnpack=False)
    x = np.random.default_rng(1).integers(-128, 128, size=a.inputs[0].shape, dtype=np.int8)
    assert a.run({a.inputs[0].name: x})[a.outputs[0].name].tobytes() == \
        b.run({b.inputs[0].name: x})[b.outputs[0].name].tobytes()


def test_graph_view_reads_quantization(zoo_name):
    g = load_graph(zoo_bytes(zoo_name))
    assert len({t.name for t in g.tensors}) == len(g.tensors)
    convs = [op for op in g.ops if op.op in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D")]
    assert convs
    for op in convs:
        w = g.tensors[op.inputs[1]]
        assert w.dtype == "int8" and w.is_constant and w.quant is not None
        out_ch = w.shape[3] if op.op == "DEPTHWISE_CONV_2D" else w.shape[0]
        if op.op != "FULLY_CONNECTED":
            assert len(w.quant.scale) == out_ch, "conv weights are per-channel"
    assert all(g.tensors[i].dtype == "int8" for i in g.inputs + g.outputs)
