"""ARG_MAX and ARG_MIN on int8 / uint8 (segmentation and classification heads): kernels/c/arg_min_max.c, the
first index on ties as the interpreter (numpy's argmax / argmin).  The axis must be a constant (int32 or int64,
one value, negative counted from the end); the output int32 or int64 as the options say."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext


def lower(ctx: OpContext) -> Lowered:
    x, axis_t, y = ctx.input(0), ctx.input(1), ctx.output()
    if x is None or x.dtype not in ("int8", "uint8"):
        raise ctx.fail(f"input is {x.dtype if x else None}; the native kernel takes int8 or uint8")
    if y.dtype not in ("int32", "int64"):
        raise ctx.fail(f"output is {y.dtype}; int32 or int64 expected")
    if axis_t is None or axis_t.dtype not in ("int32", "int64") or axis_t.size != 1:
        raise ctx.fail("axis must be one int32 or int64 value")
    rank = len(x.shape)
    axis = int(ctx.constant(axis_t, "the axis (a computed one is not supported)").reshape(-1)[0])
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ctx.fail(f"axis {axis} out of range for rank {rank}")
    shape = [int(d) for d in x.shape]
    if list(y.shape) != shape[:axis] + shape[axis + 1 :]:
        raise ctx.fail(f"output shape {list(y.shape)} differs from {shape[:axis] + shape[axis + 1:]}")
    if shape[axis] < 1 or 0 in shape:
        raise ctx.fail("empty input or axis")
    outer, inner = int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis + 1 :], dtype=np.int64))
    src, dst, is_max = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1), ctx.op.op == "ARG_MAX"

    def make(scratch: np.ndarray):
        return ex.ArgMinMax(src, dst, outer=outer, axis_size=shape[axis], inner=inner, is_max=is_max,
                            scratch=scratch.view(np.int32)[: 2 * inner])  # fmt: skip

    return Lowered(make, 8 * inner)
