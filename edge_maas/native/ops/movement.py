"""Ops that only move int8 bytes: RESHAPE/SQUEEZE/EXPAND_DIMS, PAD/PADV2, CONCATENATION, STRIDED_SLICE.

The interpreter's int8 kernels for these require the output quantization to
equal the input's; we refuse anything else rather than guess a rescaling."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.shapes import contiguous_strides, pad5


def _same_quant(ctx: OpContext, *tensors) -> None:
    y = ctx.output()
    for t in tensors:
        if t.dtype != y.dtype or (t.quant is not None and y.quant is not None and ctx.qparams(t, t.dtype) != ctx.qparams(y, y.dtype)):
            raise ctx.fail(f"input {t.name!r} and output differ in type or quantization; int8 kernels do not rescale here")


def lower_reshape(ctx: OpContext) -> Lowered:
    x, y = ctx.input(0), ctx.output()
    _same_quant(ctx, x)
    if x.size != y.size:
        raise ctx.fail(f"reshape of {x.size} elements into {list(y.shape)}")
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    box = [1, 1, 1, 1, x.size]
    return Lowered(lambda _s: ex.StridedCopy(src, dst, box, [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]))


def lower_pad(ctx: OpContext) -> Lowered:
    x, y = ctx.input(0), ctx.output()
    _same_quant(ctx, x)
    pads = ctx.constant(ctx.input(1), "the paddings").astype(np.int64).reshape(-1, 2)
    if pads.shape[0] != len(x.shape) or (pads < 0).any():
        raise ctx.fail(f"paddings {pads.tolist()} do not fit input rank {len(x.shape)}")
    if [d + int(p.sum()) for d, p in zip(x.shape, pads)] != list(y.shape):
        raise ctx.fail(f"padded shape does not match the output {list(y.shape)}")
    fill = ctx.qparams(y)[1] if y.quant is not None else 0
    if ctx.input(2) is not None:  # PADV2: explicit constant value, quantized like the output
        fill = int(ctx.constant(ctx.input(2), "the pad value").reshape(-1)[0])
    dims, out_shape = pad5(x.shape), pad5(y.shape)
    lead = [0] * (5 - len(pads)) + [int(p[0]) for p in pads]
    ost = contiguous_strides(out_shape)
    start = sum(a * s for a, s in zip(lead, ost))
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    return Lowered(lambda _s: ex.StridedCopy(src, dst, dims, contiguous_strides(dims), ost, 0, start, fill=fill))


def lower_concatenation(ctx: OpContext) -> Lowered:
    o = ctx.options("ConcatenationOptions")
    if o.fusedActivationFunction != 0:
        raise ctx.fail("fused activation on CONCATENATION is not supported")
    y = ctx.output()
    ins = [ctx.input(k) for k in range(len(ctx.op.inputs))]
    _same_quant(ctx, *ins)
    rank = len(y.shape)
    axis = o.axis + rank if o.axis < 0 else o.axis
    if not 0 <= axis < rank:
        raise ctx.fail(f"axis {o.axis} out of range for rank {rank}")
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    inner = int(np.prod(y.shape[axis + 1 :], dtype=np.int64))
    if sum(t.shape[axis] for t in ins) != y.shape[axis]:
        raise ctx.fail("input sizes along the axis do not add up to the output's")
    dst = ctx.activation(y).reshape(-1)
    row = y.shape[axis] * inner
    boxes, offset = [], 0
    for t in ins:
        n = t.shape[axis] * inner  # contiguous run per outer index
        boxes.append((ctx.array(t).reshape(-1), [1, 1, 1, outer, n], offset))
        offset += n

    def make(_scratch):
        return [ex.StridedCopy(src, dst, box, [0, 0, 0, box[4], 1], [0, 0, 0, row, 1], 0, off) for src, box, off in boxes]

    return Lowered(make)


def lower_strided_slice(ctx: OpContext) -> Lowered:
    o = ctx.options("StridedSliceOptions")
    if o.ellipsisMask or o.newAxisMask or getattr(o, "offset", False):
        raise ctx.fail("ellipsis_mask, new_axis_mask and offset are not supported")
    x, y = ctx.input(0), ctx.output()
    _same_quant(ctx, x)
    begin = ctx.constant(ctx.input(1), "begin").reshape(-1).tolist()
    end = ctx.constant(ctx.input(2), "end").reshape(-1).tolist()
    steps = ctx.constant(ctx.input(3), "strides").reshape(-1).tolist()
    rank = len(x.shape)
    if not len(begin) == len(end) == len(steps) <= rank or any(s == 0 for s in steps):
        raise ctx.fail(f"begin/end/strides {begin}/{end}/{steps} do not fit rank {rank}")
    st = contiguous_strides(x.shape)
    counts, in_strides, start, kept = [], [], 0, []
    for ax in range(rank):
        dim = x.shape[ax]
        if ax >= len(begin):
            lo, step, n = 0, 1, dim
        elif o.shrinkAxisMask >> ax & 1:
            lo = begin[ax] + dim if begin[ax] < 0 else begin[ax]
            if not 0 <= lo < dim:
                raise ctx.fail(f"shrink index {begin[ax]} out of range on axis {ax}")
            step, n = 1, 1
        else:
            b = None if o.beginMask >> ax & 1 else begin[ax]
            e = None if o.endMask >> ax & 1 else end[ax]
            lo, hi, step = slice(b, e, steps[ax]).indices(dim)
            n = len(range(lo, hi, step))
        if n == 0:
            raise ctx.fail("empty slice")
        counts.append(n)
        in_strides.append(step * st[ax])
        start += lo * st[ax]
        if not (ax < len(begin) and o.shrinkAxisMask >> ax & 1):
            kept.append(n)
    if kept != list(y.shape) and not (kept == [] and y.size == 1):
        raise ctx.fail(f"sliced shape {kept} does not match the output {list(y.shape)}")
    if rank > 5:
        raise ctx.fail(f"rank {rank} > 5 is not supported")
    dims = pad5(counts)
    in_st = [0] * (5 - rank) + in_strides
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    return Lowered(lambda _s: ex.StridedCopy(src, dst, dims, in_st, contiguous_strides(dims), start))
