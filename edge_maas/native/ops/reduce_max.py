"""REDUCE_MAX and REDUCE_MIN on int8: the stored values compared (kernels/c/reduce_max.c).  Like the interpreter
(reduce.cc), the input and output must share one quantization; the axes come from a constant (any order, negative,
repeated), keep_dims either way.  Adjacent axes that are both reduced or both kept are merged so ranks up to 5 after
merging run."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.shapes import contiguous_strides


def reduce_layout(ctx: OpContext) -> tuple[list[int], list[int], int]:
    """(5-D dims of the input with same-fate axes merged, output strides (0 on reduced axes), elements per output)
    from the constant axes (any order, negative, repeated) and keep_dims; checks the output shape."""
    x, axes_t, y = ctx.input(0), ctx.input(1), ctx.output()
    if axes_t is None or axes_t.dtype not in ("int32", "int64"):
        raise ctx.fail("axes must be an int32 or int64 tensor")
    shape, rank = [int(d) for d in x.shape], len(x.shape)
    axes = set()
    for v in ctx.constant(axes_t, "the axes (computed ones are not supported)").reshape(-1):
        a = int(v) + rank if int(v) < 0 else int(v)
        if not 0 <= a < rank:
            raise ctx.fail(f"axis {int(v)} out of range for rank {rank}")
        axes.add(a)
    o = ctx.op.options
    keep = bool(getattr(o, "keepDims", False)) if type(o).__name__ == "ReducerOptionsT" else False
    want = [1 if i in axes else d for i, d in enumerate(shape)] if keep else [d for i, d in enumerate(shape) if i not in axes]
    if list(y.shape) != want:
        raise ctx.fail(f"output shape {list(y.shape)} differs from the {want} the interpreter computes")
    if 0 in shape:
        raise ctx.fail("empty input")
    # merge runs of axes with the same fate; output strides: contiguous over the kept axes, 0 on reduced ones
    dims, red = [], []
    for i, d in enumerate(shape):
        r = i in axes
        if dims and red[-1] == r:
            dims[-1] *= d
        else:
            dims.append(d)
            red.append(r)
    if len(dims) > 5:
        raise ctx.fail(f"{len(dims)} alternating reduced / kept axis groups; at most 5 supported")
    dims, red = [1] * (5 - len(dims)) + dims, [False] * (5 - len(red)) + red
    kept = contiguous_strides([d for d, r in zip(dims, red) if not r])
    strides, k, count = [], 0, 1
    for d, r in zip(dims, red):
        if r:
            strides.append(0)
            count *= d
        else:
            strides.append(kept[k])
            k += 1
    return dims, strides, count


def lower(ctx: OpContext) -> Lowered:
    x, y = ctx.input(0), ctx.output()
    if ctx.qparams(x) != ctx.qparams(y):
        raise ctx.fail("input and output differ in quantization; the interpreter requires them equal")
    dims, strides, _ = reduce_layout(ctx)
    src, dst, is_max = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1), ctx.op.op == "REDUCE_MAX"
    return Lowered(lambda _s: ex.ReduceMax(src, dst, dims, strides, is_max=is_max))
