"""What an op lowering sees (OpContext) and returns (Lowered)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_maas.errors import UnsupportedOpError
from edge_maas.tflite.graph import Graph, OpInfo, TensorInfo


@dataclass
class Lowered:
    """make(scratch) builds the kernel; scratch is shared by all kernels (they run one at a time)."""

    make: Callable[[np.ndarray], object]
    scratch_bytes: int = 0


@dataclass
class OpContext:
    graph: Graph
    op: OpInfo
    arrays: dict[int, np.ndarray]  # activation tensor index -> arena view (C-contiguous, its shape)
    threads: int

    @property
    def where(self) -> str:
        return f"op {self.op.index} ({self.op.op})"

    def fail(self, msg: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.where}: {msg}")

    def tensor(self, idx: int) -> TensorInfo:
        return self.graph.tensors[idx]

    def input(self, k: int) -> TensorInfo | None:
        ins = self.op.inputs
        return None if k >= len(ins) or ins[k] < 0 else self.graph.tensors[ins[k]]

    def output(self, k: int = 0) -> TensorInfo:
        return self.graph.tensors[self.op.outputs[k]]

    def array(self, t: TensorInfo) -> np.ndarray:
        """The arena view of an activation, or the data of a constant."""
        return self.graph.constant(t) if t.is_constant else self.arrays[t.index]

    def activation(self, t: TensorInfo) -> np.ndarray:
        if t.is_constant:
            raise self.fail(f"tensor {t.name!r} is a constant where an activation is expected")
        return self.arrays[t.index]

    def constant(self, t: TensorInfo | None, what: str) -> np.ndarray:
        if t is None or not t.is_constant:
            raise self.fail(f"{what} must be a constant tensor")
        return self.graph.constant(t)

    def qparams(self, t: TensorInfo, dtype: str = "int8") -> tuple[float, int]:
        """(scale, zero_point) of a per-tensor quantized tensor of the given dtype."""
        if t.dtype != dtype:
            raise self.fail(f"tensor {t.name!r} is {t.dtype}; the native executor handles {dtype} here")
        if t.quant is None:
            raise self.fail(f"tensor {t.name!r} has no quantization parameters")
        if t.quant.per_channel:
            raise self.fail(f"tensor {t.name!r} is quantized per channel where per-tensor is required")
        return t.quant.scale[0], t.quant.zero_point[0]

    def options(self, kind: str):
        opts = self.op.options
        if opts is None or type(opts).__name__ != f"{kind}T":
            raise self.fail(f"missing {kind}")
        return opts
