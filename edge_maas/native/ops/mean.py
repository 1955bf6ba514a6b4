"""MEAN (int8) over a contiguous run of axes (e.g. H, W of NHWC: global average pooling)."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.mean import mean_params
from edge_maas.native.lowering import Lowered, OpContext


def lower(ctx: OpContext) -> Lowered:
    o = ctx.options("ReducerOptions")
    x, y = ctx.input(0), ctx.output()
    rank = len(x.shape)
    if ctx.input(1) is None or ctx.input(1).dtype != "int32":  # reduce.cc PrepareSimple
        raise ctx.fail(f"axes tensor is {ctx.input(1).dtype if ctx.input(1) else 'missing'}; int32 expected")
    raw = [int(a) for a in ctx.constant(ctx.input(1), "the axes").reshape(-1)]
    if any(not -rank <= a < rank for a in raw):
        raise ctx.fail(f"axis in {raw} out of range for rank {rank}")
    axes = sorted({a % rank for a in raw})
    if not axes or axes != list(range(axes[0], axes[-1] + 1)):
        raise ctx.fail(f"reduction over axes {axes} is not a contiguous run; not supported")
    outer = int(np.prod(x.shape[: axes[0]], dtype=np.int64))
    count = int(np.prod(x.shape[axes[0] : axes[-1] + 1], dtype=np.int64))
    inner = int(np.prod(x.shape[axes[-1] + 1 :], dtype=np.int64))
    if y.size != outer * inner:
        raise ctx.fail(f"output shape {list(y.shape)} does not hold {outer} x {inner} values")
    (si, zi), (so, zo) = ctx.qparams(x), ctx.qparams(y)
    # The interpreter's optimized kernel takes only this case; the rest go to QuantizedMeanOrSum.
    keep_hw = bool(o.keepDims) and rank == 4 and axes == [1, 2]
    p = mean_params(si, zi, so, zo, count, inner, keep_hw)
    if not all(-(2**31) <= int(p[k]) < 2**31 for k in ("pre_offset", "mult", "out_zp")):
        # int32 in the interpreter too, where it overflows (undefined): nothing exact to mirror
        raise ctx.fail(f"scales {si:.6g} -> {so:.6g} over {count} values overflow the int32 requantization")
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)

    def make(scratch: np.ndarray):
        return ex.Mean(src, dst, outer, count, inner, p["pre_offset"], p["mult"], p["shift"], p["out_zp"],
                       p["round_up_below"], scratch.view(np.int32)[:inner])  # fmt: skip

    return Lowered(make, inner * 4)
