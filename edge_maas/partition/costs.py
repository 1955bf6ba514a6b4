"""Per-op cost model: multiply-accumulates from shapes, and measured latency."""

from __future__ import annotations

import time

import numpy as np

from edge_maas.tflite.graph import Graph, OpInfo


def op_macs(graph: Graph, op: OpInfo) -> int:
    """Multiply-accumulates of one op (element count for element-wise ops)."""
    out = graph.tensors[op.outputs[0]] if op.outputs else None
    out_elems = out.size if out is not None else 0
    if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D"):
        w = graph.tensors[op.inputs[1]]  # weights are input 1 for all four
        kernel = int(np.prod(w.shape[1:], dtype=np.int64))
        if op.op == "DEPTHWISE_CONV_2D":
            kernel = int(np.prod(w.shape[1:3], dtype=np.int64))
        return out_elems * kernel
    if op.op in ("FULLY_CONNECTED", "BATCH_MATMUL"):
        w = graph.tensors[op.inputs[1]]
        return out_elems * int(w.shape[-1] if op.op == "FULLY_CONNECTED" else w.shape[-2])
    if op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and op.options is not None:
        return out_elems * int(op.options.filterHeight) * int(op.options.filterWidth)
    if op.op in ("MEAN", "SUM", "REDUCE_MAX"):
        return graph.tensors[op.inputs[0]].size
    return out_elems


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
