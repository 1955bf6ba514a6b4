"""GATHER with constant positions (embedding rows, channel / anchor selection) on int8 / uint8: kernels/c/gather.c,
one pass in output order.  Values are copied as stored, as the interpreter does.
batch_dims must be 0; positions outside the axis are refused (the interpreter fails at run time)."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext


def lower(ctx: OpContext) -> Lowered:
    x, pos_t, y = ctx.input(0), ctx.input(1), ctx.output()
    if x is None or x.dtype not in ("int8", "uint8") or y.dtype != x.dtype:
        raise ctx.fail(f"{x.dtype if x else None} -> {y.dtype}; the native GATHER copies int8 or uint8")
    if pos_t is None or pos_t.dtype not in ("int32", "int64"):
        raise ctx.fail("positions must be int32 or int64")
    o = ctx.op.options
    axis = int(getattr(o, "axis", 0)) if type(o).__name__ == "GatherOptionsT" else 0
    if type(o).__name__ == "GatherOptionsT" and int(o.batchDims) != 0:
        raise ctx.fail(f"batch_dims {o.batchDims} is not supported (only 0)")
    shape, rank = [int(d) for d in x.shape], len(x.shape)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ctx.fail(f"axis {axis} out of range for rank {rank}")
    pos = ctx.constant(pos_t, "the positions (computed ones are not supported)").astype(np.int64)
    if pos.size and (pos.min() < 0 or pos.max() >= shape[axis]):
        raise ctx.fail(f"positions outside 0..{shape[axis] - 1} (the interpreter fails on them)")
    want = shape[:axis] + list(pos.shape) + shape[axis + 1 :]
    if list(y.shape) != want:
        raise ctx.fail(f"output shape {list(y.shape)} differs from the {want} the interpreter computes")
    if pos.size == 0 or 0 in shape:
        raise ctx.fail("empty gather")
    outer, inner = int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis + 1 :], dtype=np.int64))
    flat = np.ascontiguousarray(pos.reshape(-1), dtype=np.int32)
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    return Lowered(lambda _s: ex.Gather(src, dst, flat, outer=outer, axis_size=shape[axis], inner=inner))
