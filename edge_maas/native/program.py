"""Compile a graph for the native executor: lower every op, plan the arena, bind kernels."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from edge_maas.errors import UnsupportedOpError
from edge_maas.kernels import executor as ex
from edge_maas.native.arena import ALIGN, ArenaPlan, plan_arena
from edge_maas.native.lowering import OpContext
from edge_maas.native.ops import lowering, supported
from edge_maas.tflite.graph import Graph

log = logging.getLogger(__name__)


@dataclass
class Compiled:
    program: object  # executor.Program
    arena: np.ndarray
    plan: ArenaPlan
    scratch_bytes: int
    weight_bytes: int  # pre-packed weights and requantization tables
    inputs: dict[str, np.ndarray]  # graph input name -> arena view
    outputs: dict[str, np.ndarray]

    @property
    def memory_bytes(self) -> int:
        return self.plan.size + self.scratch_bytes + self.weight_bytes


class KernelSequence:
    """Runs kernels one by one from Python: for programs with kernels that are not C
    (the accelerator backend's torch ops)."""

    def __init__(self, kernels: list):
        self.kernels = kernels

    def run(self) -> None:
        for k in self.kernels:
            k.run()


def compile_graph(graph: Graph, threads: int = 1, overrides: Mapping[str, Callable] | None = None) -> Compiled:
    """overrides: op name -> lowering used instead of the native one (the accelerator backend)."""
    # Check every op first, so an unsupported op is reported before any work; every problem is
    # collected (an op without a kernel, or one used in a way its kernel does not cover) and
    # reported in one UnsupportedOpError, not only the first.
    overrides = overrides or {}
    problems: list[OpProblem] = []
    lowerings = []
    for op in graph.ops:
        try:
            lowerings.append(overrides.get(op.op) or lowering(op.op))
        except UnsupportedOpError:
            lowerings.append(None)
            problems.append(OpProblem(op.index, op.op, f"no kernel for {op.op}", no_kernel=True))
    plan = plan_arena(*_activations(graph))
    arena = np.zeros(plan.size + ALIGN, dtype=np.uint8)
    base = (-arena.ctypes.data) % ALIGN  # align the arena itself
    arrays = {}
    for idx, off in plan.offsets.items():
        t = graph.tensors[idx]
        arrays[idx] = arena[base + off : base + off + t.activation_bytes].view(t.dtype).reshape(t.shape)
    lowered = []
    for op, lower in zip(graph.ops, lowerings, strict=True):
        if lower is None:
            continue
        try:
            lowered.append(lower(OpContext(graph, op, arrays, threads)))
        except UnsupportedOpError as exc:
            problems.append(OpProblem(op.index, op.op, _strip_where(str(exc), op)))
    if problems:
        raise unsupported(problems)
    scratch_bytes = max((lw.scratch_bytes for lw in lowered), default=0)
    scratch = np.zeros((scratch_bytes + ALIGN - 1) // ALIGN * ALIGN + ALIGN, dtype=np.uint8)
    kernels = []
    for lw in lowered:  # a lowering may give one kernel or several (CONCATENATION: one per input)
        k = lw.make(scratch)
        kernels.extend(k if isinstance(k, list) else [k])
    weight_bytes = _owned_bytes(kernels, (arena, scratch))
    native = all(isinstance(k, ex.Kernel) for k in kernels)
    program = ex.Program(kernels) if native else KernelSequence(kernels)
    log.debug(
        "compiled %d ops: arena %d B (%d B without reuse), scratch %d B, isa %s",
        len(kernels), plan.size, plan.unshared, scratch_bytes, ex.isa(),
    )  # fmt: skip
    return Compiled(
        program,
        arena,
        plan,
        scratch_bytes,
        weight_bytes,
        {graph.tensors[i].name: arrays[i] for i in graph.inputs},
        {graph.tensors[i].name: arrays[i] for i in graph.outputs},
    )


@dataclass(frozen=True)
class OpProblem:
    """One op the native executor cannot run: its index in the graph, its name, and why."""

    index: int
    op: str
    why: str
    no_kernel: bool = False  # the op has no kernel at all (else: a kernel that does not cover this use)

    def __str__(self) -> str:
        return f"op {self.index} ({self.op}): {self.why}"


def unsupported(problems: list[OpProblem]) -> UnsupportedOpError:
    """One error naming every problem; ``problems`` stays on it for callers that fall back per stage,
    and ``summary`` is a short form for logs (``native lacks TRANSPOSE (op 7), TANH (op 9)``)."""
    n = len(problems)
    text = f"the native executor cannot run {n} op{'s' if n > 1 else ''}: " + "; ".join(map(str, problems))
    if any(p.no_kernel for p in problems):
        text += f". Ops with a kernel: {', '.join(supported())}"
    exc = UnsupportedOpError(text + ". Run this model (or this shard) on the 'litert' backend")
    lacks = [f"{p.op} (op {p.index})" for p in problems if p.no_kernel]
    other = [f"{p.op} (op {p.index}: {p.why})" for p in problems if not p.no_kernel]
    exc.problems = list(problems)
    exc.summary = "; ".join(([f"native lacks {', '.join(lacks)}"] if lacks else [])
                            + ([f"native cannot run {', '.join(other)}"] if other else []))  # fmt: skip
    return exc


def _strip_where(msg: str, op) -> str:
    """A lowering's message without its own "op N (NAME): " prefix (the problem list adds it back)."""
    return msg.removeprefix(f"op {op.index} ({op.op}): ")


def _activations(graph: Graph) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    """Byte size and inclusive lifetime (first writer .. last reader) of every non-constant tensor."""
    end = len(graph.ops)
    life: dict[int, list[int]] = {}
    for i in graph.inputs:
        life[i] = [-1, -1]
    for op in graph.ops:
        for t in op.inputs:
            if t >= 0 and not graph.tensors[t].is_constant:
                if t not in life:
                    raise UnsupportedOpError(f"op {op.index} ({op.op}) reads tensor {t}, which nothing writes")
                life[t][1] = max(life[t][1], op.index)
        for t in op.outputs:
            life.setdefault(t, [op.index, op.index])
    for t in graph.outputs:
        if t not in life:
            raise UnsupportedOpError(f"graph output {graph.tensors[t].name!r} is not written by any op")
        life[t][1] = end
    sizes = {t: graph.tensors[t].activation_bytes for t in life}
    return sizes, {t: (a, b) for t, (a, b) in life.items()}


def _owned_bytes(kernels, shared) -> int:
    """Bytes of the arrays kernels own outright (packed weights, tables): not arena or scratch views."""
    seen = {}
    for k in kernels:
        for a in k.arrays:
            if not any(np.may_share_memory(a, s) for s in shared):
                seen[a.__array_interface__["data"][0]] = a.nbytes
    return sum(seen.values())
