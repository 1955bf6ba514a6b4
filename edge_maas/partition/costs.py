"""Per-op cost model: multiply-accumulates from shapes, and measured latency."""

from __future__ import annotations

import math
import time

import numpy as np

from edge_maas.tflite.graph import Graph, OpInfo


def op_macs(graph: Graph, op: OpInfo) -> int:
    """Multiply-accumulates of one op (element count for element-wise ops).

    Never negative; an op whose weights or options are missing or of another kind counts its output elements
    (load_graph has validated indices and shapes, but not that each op has the inputs its kind needs)."""
    out = graph.tensors[op.outputs[0]] if op.outputs else None
    out_elems = out.size if out is not None else 0
    w = _input(graph, op, 1)
    if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D") and w is not None:
        kernel = math.prod(w.shape[1:3] if op.op == "DEPTHWISE_CONV_2D" else w.shape[1:])  # weights: input 1
        return out_elems * kernel
    if op.op in ("FULLY_CONNECTED", "BATCH_MATMUL") and w is not None and len(w.shape) >= 2:
        return out_elems * int(w.shape[-1] if op.op == "FULLY_CONNECTED" else w.shape[-2])
    if op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        fh, fw = getattr(op.options, "filterHeight", 1), getattr(op.options, "filterWidth", 1)
        return out_elems * max(int(fh), 1) * max(int(fw), 1)
    if op.op in ("MEAN", "SUM", "REDUCE_MAX") and _input(graph, op, 0) is not None:
        return _input(graph, op, 0).size
    return out_elems


def _input(graph: Graph, op: OpInfo, k: int):
    return graph.tensors[op.inputs[k]] if k < len(op.inputs) and op.inputs[k] >= 0 else None


def graph_macs(graph: Graph) -> list[int]:
    return [op_macs(graph, op) for op in graph.ops]


def measure_op_latency(graph: Graph, repeats: int = 20, threads: int = 1, xnnpack: bool = False) -> list[float]:
    """Median seconds per op, each op run alone as a one-op model in the interpreter."""
    from edge_maas.backends.litert import LiteRTBackend
    from edge_maas.partition.plan import op_io
    from edge_maas.tflite.writer import build_submodel

    rng = np.random.default_rng(0)
    out = []
    for op in graph.ops:
        ins, outs = op_io(graph, [op.index])
        backend = LiteRTBackend(build_submodel(graph, [op.index], ins, outs), threads=threads, xnnpack=xnnpack)
        feed = {s.name: _random(rng, s.shape, s.dtype) for s in backend.inputs}
        backend.run(feed)  # warm up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            backend.run(feed)
            times.append(time.perf_counter() - t0)
        out.append(float(np.median(times)))
    return out


def _random(rng, shape, dtype) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)
    return rng.standard_normal(size=shape).astype(dt)
