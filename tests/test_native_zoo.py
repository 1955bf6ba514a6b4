"""The native executor on every zoo model, whole and as shards: byte-identical to
the interpreter's built-in kernels (no delegates) on 100 random inputs each, on
every instruction-set path this machine has, and with 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from arm import AARCH64, DEPARTING_OPS, ONE_LSB, check
from conftest import ZOO_NAMES, skip_unless_litert_semantics, zoo_bytes, zoo_expected
from oneop import ISAS, isa

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.backends.native import NativeBackend
from edge_maas.partition import plan_balanced, plan_every_op
from edge_maas.partition.costs import graph_macs
from edge_maas.tflite import load_graph
from edge_maas.tflite.writer import build_submodel

N_INPUTS = 100


def _feeds(backend, n, seed):
    rng = np.random.default_rng(seed)
    return [
        {s.name: rng.integers(-128, 128, size=s.shape, dtype=np.int8) if s.dtype == "int8"
         else rng.standard_normal(s.shape).astype(s.dtype) for s in backend.inputs}
        for _ in range(n)
    ]  # fmt: skip


def _assert_same(model: bytes, n: int, seed: int, threads: int = 1) -> None:
    interp = LiteRTBackend(model, xnnpack=False)
    native = NativeBackend(model, threads=threads)
    feeds = _feeds(interp, n, seed)
    wants = [interp.run(f) for f in feeds]
    if AARCH64:  # the interpreter is not the reference there: its departures asserted, native's bytes taken
        wants = _aarch64_departures(model, native, feeds, wants)
    for name in ISAS:
        with isa(name):
            for i, (feed, want) in enumerate(zip(feeds, wants)):
                got = native.run(feed)
                for k in want:
                    assert np.array_equal(got[k], want[k]), f"{name}, input {i}: {k!r} differs"


def _aarch64_departures(model: bytes, native: NativeBackend, feeds, wants) -> list[dict]:
    """aarch64: where the interpreter differs from native, assert it is a documented departure (tests/arm.py): a
    one-op model of a departing op at most 1 LSB away, any other one-op model never; a larger model only when it
    holds a departing op (1-LSB departures then propagate).  Native is held to the x86 bytes by the committed
    outputs (test_whole_model_matches_committed_outputs, test_shard_chain_matches_committed_outputs)."""
    graph_ops = load_graph(model).ops
    ops = {op.op for op in graph_ops}
    got = [native.run(f) for f in feeds]
    departing = 0
    for g, w in zip(got, wants):
        for k in w:
            if len(graph_ops) == 1:
                departing += check(k, g[k], w[k], ONE_LSB if ops <= DEPARTING_OPS else None)
            elif not np.array_equal(g[k], w[k]):
                departing += 1
    if departing:
        assert ops & DEPARTING_OPS, f"the interpreter departs on a model of {sorted(ops)}: none is documented to"
    return got


def _native_chain(g, shards, x: np.ndarray) -> np.ndarray:
    """Run the shards in order on native, each fed the tensors the earlier ones (or the model input) made."""
    env = {g.tensors[g.inputs[0]].name: x}
    for sh in shards:
        nb = NativeBackend(build_submodel(g, sh.ops, sh.inputs, sh.outputs))
        env.update(nb.run({s.name: env[s.name] for s in nb.inputs}))
    return env[g.tensors[g.outputs[0]].name]


@pytest.mark.parametrize("plan", ["shards3", "every_op"])
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_shard_chain_matches_committed_outputs(name, plan):
    """Native shard by shard gives the x86 interpreter's committed bytes (on every CPU: the aarch64 guard)."""
    blob = zoo_bytes(name)
    g = load_graph(blob)
    cut = plan_balanced(g, 3, graph_macs(g)) if plan == "shards3" else plan_every_op(g)
    xs, ys = zoo_expected(name)
    for x, y in list(zip(xs, ys))[: 4 if plan == "every_op" else len(xs)]:
        assert np.array_equal(_native_chain(g, cut.shards, x[None])[0], y)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_whole_model(name):
    _assert_same(zoo_bytes(name), N_INPUTS, seed=1)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_whole_model_matches_committed_outputs(name):
    xs, ys = zoo_expected(name)
    for threads in (1, 2):
        native = NativeBackend(zoo_bytes(name), threads=threads)
        for x, y in zip(xs, ys):
            out = native.run({native.inputs[0].name: x[None]})
            assert np.array_equal(out[native.outputs[0].name][0], y)


@pytest.mark.parametrize("plan", ["shards3", "every_op"])
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_shards(name, plan):
    if name == "branchy_cnn":  # native is still checked against the committed outputs (test_whole_model_matches...)
        skip_unless_litert_semantics("on random inputs its DEPTHWISE_CONV_2D (depth multiplier 2) is 1 LSB off")
    blob = zoo_bytes(name)
    g = load_graph(blob)
    cut = plan_balanced(g, 3, graph_macs(g)) if plan == "shards3" else plan_every_op(g)
    n = N_INPUTS if plan == "shards3" else 10  # every-op: ~65 shards on the MobileNet
    for sh in cut.shards:
        _assert_same(build_submodel(g, sh.ops, sh.inputs, sh.outputs), n, seed=sh.index)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_two_threads(name):
    _assert_same(zoo_bytes(name), 10, seed=2, threads=2)
