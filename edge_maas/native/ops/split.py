"""SLICE, SPLIT, SPLIT_V: byte copies of boxes of the input (the strided box copy), as the interpreter's
int8 kernels, which move bytes and require every output to carry the input's quantization.

Detectors (NanoDet, YOLO heads) split channel groups and slice boxes from scores with these."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.movement import _same_quant
from edge_maas.native.shapes import RANK, contiguous_strides, pad5


def _ints(ctx: OpContext, k: int, what: str) -> list[int]:
    t = ctx.input(k)
    if t is None or t.dtype not in ("int32", "int64"):
        raise ctx.fail(f"{what} is {t.dtype if t else 'missing'}; int32 or int64 expected")
    return [int(v) for v in ctx.constant(t, f"{what} (a computed one is not supported)").reshape(-1)]


def lower_slice(ctx: OpContext) -> Lowered:
    """slice.cc: begin and size per axis (size -1: to the end), at most 5 axes."""
    x, y = ctx.input(0), ctx.output()
    _same_quant(ctx, x)
    begin, size = _ints(ctx, 1, "begin"), _ints(ctx, 2, "size")
    rank = len(x.shape)
    if rank > RANK or len(begin) != rank or len(size) != rank:
        raise ctx.fail(f"begin {begin} / size {size} do not fit the input's rank {rank} (at most {RANK})")
    counts = []
    for b, s, d in zip(begin, size, x.shape):
        n = d - b if s == -1 else s
        if not (0 <= b and n >= 1 and b + n <= d):
            raise ctx.fail(f"slice begin {begin} size {size} is empty or outside the input {list(x.shape)}")
        counts.append(n)
    if counts != list(y.shape):
        raise ctx.fail(f"sliced shape {counts} does not match the output {list(y.shape)}")
    st = contiguous_strides(x.shape)
    start = sum(b * s for b, s in zip(begin, st))
    dims = pad5(counts)
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    in_st = [0] * (RANK - rank) + st
    return Lowered(lambda _s: ex.StridedCopy(src, dst, dims, in_st, contiguous_strides(dims), start))


def _axis(ctx: OpContext, k: int, rank: int) -> int:
    t = ctx.input(k)
    if t is None or t.dtype != "int32" or t.size != 1:  # split.cc: a one-element int32 axis
        raise ctx.fail("the axis must be one int32 value")
    a = int(ctx.constant(t, "the axis").reshape(-1)[0])
    axis = a + rank if a < 0 else a
    if not 0 <= axis < rank:
        raise ctx.fail(f"axis {a} out of range for rank {rank}")
    return axis


def _split(ctx: OpContext, x, axis: int, sizes: list[int]) -> Lowered:
    outs = [ctx.output(k) for k in range(len(ctx.op.outputs))]
    if len(outs) != len(sizes):
        raise ctx.fail(f"{len(outs)} outputs for {len(sizes)} parts")
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1 :], dtype=np.int64))
    row = x.shape[axis] * inner
    src = ctx.array(x).reshape(-1)
    copies, at = [], 0
    for y, n in zip(outs, sizes):
        want = [n if i == axis else d for i, d in enumerate(x.shape)]
        if list(y.shape) != want:
            raise ctx.fail(f"output {y.name!r} {list(y.shape)} differs from the {want} the interpreter computes")
        copies.append((ctx.activation(y).reshape(-1), n * inner, at * inner))
        at += n

    def make(_scratch):
        return [ex.StridedCopy(src, dst, [1, 1, 1, outer, m], [0, 0, 0, row, 1], [0, 0, 0, m, 1], off)
                for dst, m, off in copies]  # fmt: skip

    return Lowered(make)


def lower_split(ctx: OpContext) -> Lowered:
    """split.cc: inputs (axis, input); SplitOptions.num_splits equal parts."""
    x = ctx.input(1)
    if x is None:
        raise ctx.fail("SPLIT takes an axis and an input")
    axis = _axis(ctx, 0, len(x.shape))
    n = int(ctx.options("SplitOptions").numSplits)
    if n < 1 or x.shape[axis] % n:
        raise ctx.fail(f"axis size {x.shape[axis]} does not split into {n} equal parts")
    _check_input_quant(ctx, x)
    return _split(ctx, x, axis, [x.shape[axis] // n] * n)


def lower_split_v(ctx: OpContext) -> Lowered:
    """split_v.cc: inputs (input, size_splits, axis); one size may be -1 (the rest)."""
    x = ctx.input(0)
    axis = _axis(ctx, 2, len(x.shape))
    sizes = _ints(ctx, 1, "size_splits")
    if sizes.count(-1) > 1:
        raise ctx.fail(f"size_splits {sizes} has more than one -1")
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - sum(s for s in sizes if s != -1)
    if sum(sizes) != x.shape[axis] or any(s < 1 for s in sizes):
        raise ctx.fail(f"size_splits {sizes} do not add up to the axis size {x.shape[axis]} (or hold an empty part)")
    _check_input_quant(ctx, x)
    return _split(ctx, x, axis, sizes)


def _check_input_quant(ctx: OpContext, x) -> None:
    """Every output against the input (movement._same_quant compares inputs with the one output)."""
    for k in range(len(ctx.op.outputs)):
        y = ctx.output(k)
        if y.dtype != x.dtype or (x.quant is not None and y.quant is not None
                                  and ctx.qparams(x, x.dtype) != ctx.qparams(y, y.dtype)):  # fmt: skip
            raise ctx.fail(
                f"output {y.name!r} and the input differ in type or quantization; int8 kernels do not rescale"
            )
