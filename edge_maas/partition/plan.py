"""Cut plans: where to cut the execution order, and what crosses each cut.

A cut sits between two ops of the model's execution order.  Every tensor that
is live across it (produced before, read after, or a model output) becomes a
boundary: an output of the shards before and an input of the shard that reads
it.  So a cut may cross several tensors (skip connections, concatenations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge_maas.errors import PartitionError
from edge_maas.tflite.graph import Graph


@dataclass(frozen=True)
class ShardSpec:
    index: int
    ops: tuple[int, ...]
    inputs: tuple[int, ...]  # tensor indices read from earlier shards or the model inputs
    outputs: tuple[int, ...]  # tensor indices read by later shards or model outputs


@dataclass(frozen=True)
class CutPlan:
    positions: tuple[int, ...]  # cut before op `p`, 0 < p < n_ops, strictly increasing
    shards: tuple[ShardSpec, ...]

    def boundaries(self, graph: Graph) -> list[list[str]]:
        """Names of the tensors that cross each cut."""
        return [[graph.tensors[t].name for t in live_across(graph, p)] for p in self.positions]


def op_io(graph: Graph, op_indices: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(inputs, outputs) of a group of ops, by tensor index, in first-use order.

    Inputs: non-constant tensors the ops read but do not produce.  Outputs:
    tensors they produce that are read outside the group or are model outputs.
    """
    group = set(op_indices)
    produced: list[int] = []
    ins: list[int] = []
    for i in op_indices:
        op = graph.ops[i]
        for t in op.inputs:
            if t >= 0 and not graph.tensors[t].is_constant and t not in produced and t not in ins:
                ins.append(t)
        produced.extend(op.outputs)
    model_outputs = set(graph.outputs)
    outs = [
        t
        for t in produced
        if t in model_outputs or any(c not in group for c in graph.consumers.get(t, ()))
    ]
    return tuple(ins), tuple(dict.fromkeys(outs))


def live_across(graph: Graph, position: int) -> list[int]:
    before = set(graph.inputs)
    for op in graph.ops[:position]:
        before.update(op.outputs)
    after = set(graph.outputs)
    for op in graph.ops[position:]:
        after.update(t for t in op.inputs if t >= 0)
    return sorted(t for t in before & after if not graph.tensors[t].is_constant)


def plan_from_positions(graph: Graph, positions: Sequence[int]) -> CutPlan:
    n = len(graph.ops)
    if n == 0:
        raise PartitionError("the model has no operators to split")
    pos = sorted(positions)
    if len(set(pos)) != len(pos):
        raise PartitionError("two cuts fall at the same point in the execution order, which would leave a shard empty")
    for p in pos:
        if not 0 < p < n:
            raise PartitionError(f"a cut before op {p} leaves a shard empty (the model has ops 0..{n - 1})")
    bounds = [0, *pos, n]
    shards = []
    for k in range(len(bounds) - 1):
        ops = tuple(range(bounds[k], bounds[k + 1]))
        ins, outs = op_io(graph, ops)
        if not outs:
            raise PartitionError(f"shard {k} (ops {ops[0]}..{ops[-1]}) produces nothing that is used later")
        shards.append(ShardSpec(k, ops, ins, outs))
    return CutPlan(tuple(pos), tuple(shards))


def plan_at_tensors(graph: Graph, names: Sequence[str]) -> CutPlan:
    """Cut right after the op that produces each named tensor."""
    positions = []
    n = len(graph.ops)
    for name in names:
        if name not in graph.by_name:
            close = [t for t in graph.by_name if name.lower() in t.lower()][:3]
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "; see `edge-maas inspect MODEL`"
            raise PartitionError(f"no tensor named {name!r} in the model{hint}")
        t = graph.by_name[name]
        if t.index in graph.inputs:
            raise PartitionError(f"cutting at model input {name!r} would leave the first shard empty")
        if t.is_constant:
            raise PartitionError(f"{name!r} is a constant (weights), not an activation; cut at activations only")
        p = graph.producer[t.index] + 1
        if p >= n:
            raise PartitionError(f"cutting at {name!r}, produced by the last op, would leave the last shard empty")
        if p in positions:
            raise PartitionError(f"cuts at {name!r} and another tensor fall at the same point, leaving a shard empty")
        positions.append(p)
    return plan_from_positions(graph, positions)


def plan_every_op(graph: Graph) -> CutPlan:
    return plan_from_positions(graph, range(1, len(graph.ops)))


def plan_balanced(graph: Graph, n_shards: int, costs: Sequence[float]) -> CutPlan:
    """Contiguous shards that minimise the largest shard cost (linear partition, exact DP)."""
    n = len(graph.ops)
    if n_shards < 1:
        raise PartitionError("--shards must be at least 1")
    if n_shards > n:
        raise PartitionError(f"cannot cut {n} ops into {n_shards} non-empty shards")
    # A tiny per-op floor keeps zero-cost ops (RESHAPE, ...) from making ties arbitrary.
    eps = max(sum(costs), 1.0) * 1e-6
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + max(float(c), 0.0) + eps)
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(n_shards + 1)]
    cut = [[0] * (n + 1) for _ in range(n_shards + 1)]
    best[0][0] = 0.0
    for k in range(1, n_shards + 1):
        for j in range(k, n - (n_shards - k) + 1):
            for i in range(k - 1, j):
                v = max(best[k - 1][i], prefix[j] - prefix[i])
                if v < best[k][j]:
                    best[k][j], cut[k][j] = v, i
    positions = []
    j = n
    for k in range(n_shards, 1, -1):
        j = cut[k][j]
        positions.append(j)
    return plan_from_positions(graph, positions)
