"""TRANSPOSE (int8/uint8; a constant int32/int64 permutation): a gather into the contiguous output.

PyTorch exports (NCHW inputs and outputs) put TRANSPOSE at the model's edges.
The interpreter's int8 kernel only moves bytes, so the output must carry the
input's quantization; axes that stay adjacent are merged first (as transpose.cc
does), so up to 6-D inputs whose permutation merges to 5 axes are covered."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.kernels.ref.transpose import merged_gather
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.movement import _same_quant
from edge_maas.native.shapes import RANK


def lower(ctx: OpContext) -> Lowered:
    if len(ctx.op.inputs) != 2:
        raise ctx.fail(f"TRANSPOSE takes 2 inputs, got {len(ctx.op.inputs)}")
    x, p, y = ctx.input(0), ctx.input(1), ctx.output()
    if x.dtype not in ("int8", "uint8"):
        raise ctx.fail(f"input is {x.dtype}; the native executor transposes int8 or uint8")
    _same_quant(ctx, x)
    if p is None or p.dtype not in ("int32", "int64") or len(p.shape) != 1:
        raise ctx.fail(
            f"the permutation is {p.dtype if p else 'missing'}{list(p.shape) if p else ''}; 1-D int32 expected"
        )
    perm = [int(v) for v in ctx.constant(p, "the permutation (a computed one is not supported)").reshape(-1)]
    rank = len(x.shape)
    if sorted(perm) != list(range(rank)):  # transpose.cc Prepare: each axis once, in range
        raise ctx.fail(f"permutation {perm} is not a permutation of the {rank} input axes")
    want = [x.shape[a] for a in perm]
    if want != list(y.shape):
        raise ctx.fail(f"output shape {list(y.shape)} differs from the {want} the interpreter computes")
    dims, strides = merged_gather(x.shape, perm)
    if len(dims) > RANK:
        raise ctx.fail(f"permutation {perm} leaves {len(dims)} axes after merging; the kernel handles {RANK}")
    dims = [1] * (RANK - len(dims)) + dims
    strides = [0] * (RANK - len(strides)) + strides
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    return Lowered(lambda _s: ex.Transpose(src, dst, dims, strides))
