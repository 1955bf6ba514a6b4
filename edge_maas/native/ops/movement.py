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


def _opt(ctx: OpContext, kind: str, field: str, default):
    o = ctx.op.options
    v = getattr(o, field, None) if o is not None and type(o).__name__ == f"{kind}T" else None
    return default if v is None else v


def _reshape_shape(ctx: OpContext) -> list[int]:
    """The output shape reshape.cc Prepare computes: from a 1-D int32 shape tensor when there is one,
    else from ReshapeOptions.new_shape ([0] meaning a scalar); one -1 at most, element counts equal."""
    n_in = len(ctx.op.inputs)
    if n_in not in (1, 2):
        raise ctx.fail(f"RESHAPE takes 1 or 2 inputs, got {n_in}")
    shape_t = ctx.input(1) if n_in == 2 else None
    if shape_t is not None and len(shape_t.shape) == 1 and shape_t.dtype == "int32":
        dims = [int(v) for v in ctx.constant(shape_t, "the shape (a computed shape is not supported)").reshape(-1)]
    else:
        dims = [int(v) for v in _opt(ctx, "ReshapeOptions", "newShape", [])]
        if dims == [0]:  # legacy converters wrote [0] for a scalar
            dims = []
    if dims.count(-1) > 1:
        raise ctx.fail(f"new shape {dims} has more than one -1")
    known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
    n = ctx.input(0).size
    if -1 in dims and known != 0:
        dims[dims.index(-1)] = n // known
    if int(np.prod(dims, dtype=np.int64)) != n or any(d < 0 for d in dims):
        raise ctx.fail(f"cannot reshape {n} elements into {dims}")
    return dims


def _squeeze_shape(ctx: OpContext) -> list[int]:
    """squeeze.cc Prepare: one input; each listed axis in range and of size 1 (none listed: every size-1 axis)."""
    if len(ctx.op.inputs) != 1:
        raise ctx.fail(f"SQUEEZE takes 1 input, got {len(ctx.op.inputs)}")
    shape = list(ctx.input(0).shape)
    axes = [int(a) for a in _opt(ctx, "SqueezeOptions", "squeezeDims", [])]
    if not axes:
        return [d for d in shape if d != 1]
    drop = set()
    for a in axes:
        cur = a + len(shape) if a < 0 else a
        if not (0 <= cur < len(shape) and shape[cur] == 1):
            raise ctx.fail(f"squeeze axis {a} is out of range or not of size 1 in {shape}")
        drop.add(cur)
    return [d for i, d in enumerate(shape) if i not in drop]


def _expand_dims_shape(ctx: OpContext) -> list[int]:
    """expand_dims.cc Prepare: a one-element int32/int64 axis in [-(rank + 1), rank]."""
    axis_t = ctx.input(1)
    if len(ctx.op.inputs) != 2 or axis_t is None:
        raise ctx.fail("EXPAND_DIMS takes an input and an axis")
    if axis_t.dtype not in ("int32", "int64") or axis_t.size != 1:
        raise ctx.fail(f"axis must be one int32/int64 value, got {axis_t.dtype}{list(axis_t.shape)}")
    shape = list(ctx.input(0).shape)
    axis = int(ctx.constant(axis_t, "the axis").reshape(-1)[0])
    cur = axis + len(shape) + 1 if axis < 0 else axis
    if not 0 <= cur <= len(shape):
        raise ctx.fail(f"axis {axis} out of range for rank {len(shape)}")
    return shape[:cur] + [1] + shape[cur:]


_SHAPES = {"RESHAPE": _reshape_shape, "SQUEEZE": _squeeze_shape, "EXPAND_DIMS": _expand_dims_shape}


def lower_reshape(ctx: OpContext) -> Lowered:
    """RESHAPE, SQUEEZE, EXPAND_DIMS: a flat copy once the output shape is the one the interpreter computes."""
    x, y = ctx.input(0), ctx.output()
    _same_quant(ctx, x)
    want = _SHAPES[ctx.op.op](ctx)
    if want != list(y.shape):
        raise ctx.fail(f"output shape {list(y.shape)} differs from the {want} the interpreter computes")
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    box = [1, 1, 1, 1, x.size]
    return Lowered(lambda _s: ex.StridedCopy(src, dst, box, [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]))


def lower_pad(ctx: OpContext) -> Lowered:
    x, y = ctx.input(0), ctx.output()
    _same_quant(ctx, x)
    p = ctx.input(1)
    if p is None or p.dtype not in ("int32", "int64", "int8", "int16"):  # pad.cc: integer paddings only
        raise ctx.fail(f"paddings are {p.dtype if p else 'missing'}; an integer tensor is required")
    if len(x.shape) > 5:  # pad.cc: PadKernelMaxDimensionCount
        raise ctx.fail(f"input rank {len(x.shape)} > 5")
    if list(p.shape) != [len(x.shape), 2]:
        raise ctx.fail(f"paddings have shape {list(p.shape)}; [{len(x.shape)}, 2] expected")
    pads = ctx.constant(p, "the paddings").astype(np.int64).reshape(-1, 2)
    if (pads < 0).any():
        raise ctx.fail(f"paddings {pads.tolist()} are negative")
    if [d + int(p.sum()) for d, p in zip(x.shape, pads)] != list(y.shape):
        raise ctx.fail(f"padded shape does not match the output {list(y.shape)}")
    fill = ctx.qparams(y)[1] if y.quant is not None else 0
    if ctx.input(2) is not None:  # PADV2: explicit constant value, quantized like the output
        v = ctx.input(2)
        if v.dtype != x.dtype or v.size != 1:  # pad.cc: same type as the input, exactly one value
            raise ctx.fail(f"constant value is {v.dtype}{list(v.shape)}; one {x.dtype} value expected")
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
    for t in ins:  # concatenation.cc Prepare: same rank, same sizes off the axis
        if len(t.shape) != rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, y.shape)) if i != axis):
            raise ctx.fail(f"input {t.name!r} {list(t.shape)} does not match output {list(y.shape)} off axis {axis}")
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
    for k, what in ((1, "begin"), (2, "end"), (3, "strides")):  # strided_slice.cc Prepare
        t = ctx.input(k)
        if t is None or t.dtype != "int32":
            raise ctx.fail(f"{what} is {t.dtype if t else 'missing'}; int32 expected")
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
