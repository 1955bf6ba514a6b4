"""The native backend: edge_maas's own compiled int8 kernels, no interpreter."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from edge_maas.backends.base import Backend, TensorSpec, check_inputs
from edge_maas.tflite.graph import load_graph

log = logging.getLogger(__name__)


class NativeBackend(Backend):
    """Compiles the model once (arena, packed weights); run() copies inputs in and outputs out."""

    def __init__(self, model_bytes: bytes, threads: int = 1, overrides=None):
        from edge_maas.native.program import compile_graph  # imports the compiled kernels

        graph = load_graph(bytes(model_bytes))
        self.threads = max(1, int(threads))
        self._compiled = compile_graph(graph, self.threads, overrides)
        self.inputs = tuple(_spec(graph.tensors[i]) for i in graph.inputs)
        self.outputs = tuple(_spec(graph.tensors[i]) for i in graph.outputs)
        self._run = self._compiled.program.run
        self._in = list(self._compiled.inputs.items())
        self._out = list(self._compiled.outputs.items())

    @property
    def memory(self) -> dict[str, int]:
        c = self._compiled
        return {"arena": c.plan.size, "arena_unshared": c.plan.unshared, "scratch": c.scratch_bytes, "weights": c.weight_bytes}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self.inputs, inputs)
        for name, view in self._in:
            view[...] = inputs[name]
        self._run()
        return {name: view.copy() for name, view in self._out}


def _spec(t) -> TensorSpec:
    return TensorSpec(t.name, t.shape, t.dtype)
