"""PACK and UNPACK (stacking along a new axis, and its inverse; sequence and detection heads): strided box copies
(kernels/c/copy.c), one per input / output, as CONCATENATION and SPLIT.  Like the interpreter (pack.cc, unpack.cc),
the inputs and outputs must share one type and quantization: nothing is rescaled."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.movement import _same_quant


def _axis(ctx: OpContext, axis: int, rank: int) -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise ctx.fail(f"axis {axis} out of range for rank {rank}")
    return a


def lower_pack(ctx: OpContext) -> Lowered:
    o = ctx.options("PackOptions")
    y = ctx.output()
    ins = [ctx.input(k) for k in range(len(ctx.op.inputs))]
    if any(t is None for t in ins) or len(ins) != o.valuesCount:
        raise ctx.fail(f"{len(ins)} inputs for values_count {o.valuesCount}")
    _same_quant(ctx, *ins)
    shape = [int(d) for d in ins[0].shape]
    if any([int(d) for d in t.shape] != shape for t in ins):
        raise ctx.fail("the inputs differ in shape")
    axis = _axis(ctx, o.axis, len(shape) + 1)
    if list(y.shape) != [*shape[:axis], len(ins), *shape[axis:]]:
        raise ctx.fail(f"output shape {list(y.shape)} differs from {[*shape[:axis], len(ins), *shape[axis:]]}")
    outer, inner = int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis:], dtype=np.int64))
    dst, n = ctx.activation(y).reshape(-1), len(ins)
    srcs = [ctx.array(t).reshape(-1) for t in ins]

    def make(_scratch):  # input k -> out[outer][k][inner]
        return [ex.StridedCopy(src, dst, [1, 1, 1, outer, inner], [0, 0, 0, inner, 1], [0, 0, 0, n * inner, 1], 0,
                               k * inner) for k, src in enumerate(srcs)]  # fmt: skip

    return Lowered(make)


def lower_unpack(ctx: OpContext) -> Lowered:
    o = ctx.options("UnpackOptions")
    x = ctx.input(0)
    shape = [int(d) for d in x.shape]
    axis = _axis(ctx, o.axis, len(shape))
    n = shape[axis]
    outs = [ctx.output(k) for k in range(len(ctx.op.outputs))]
    if len(outs) != n or o.num != n:
        raise ctx.fail(f"{len(outs)} outputs and num {o.num} for {n} slices along axis {axis}")
    for y in outs:
        if y.dtype != x.dtype or (x.quant is not None and y.quant is not None and ctx.qparams(x, x.dtype) != ctx.qparams(y, y.dtype)):
            raise ctx.fail(f"output {y.name!r} differs from the input in type or quantization; nothing is rescaled")  # fmt: skip
        if list(y.shape) != shape[:axis] + shape[axis + 1 :]:
            raise ctx.fail(f"output {y.name!r} shape {list(y.shape)} differs from {shape[:axis] + shape[axis + 1:]}")
    outer, inner = int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis + 1 :], dtype=np.int64))
    src = ctx.array(x).reshape(-1)
    dsts = [ctx.activation(y).reshape(-1) for y in outs]

    def make(_scratch):  # out k <- in[outer][k][inner]
        return [ex.StridedCopy(src, dst, [1, 1, 1, outer, inner], [0, 0, 0, n * inner, 1], [0, 0, 0, inner, 1],
                               k * inner, 0) for k, dst in enumerate(dsts)]  # fmt: skip

    return Lowered(make)
