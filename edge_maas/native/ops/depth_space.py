"""DEPTH_TO_SPACE and SPACE_TO_DEPTH (int8, NHWC, block size b): pure byte movement, run by the TRANSPOSE
gather.  depth_to_space.cc orders depth as (block row, block column, channel), as space_to_depth.cc does."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.movement import _same_quant


def _block(ctx: OpContext, kind: str) -> int:
    b = int(ctx.options(kind).blockSize)
    if b < 1:
        raise ctx.fail(f"block size {b} < 1")
    return b


def lower_depth_to_space(ctx: OpContext) -> Lowered:
    x, y = ctx.input(0), ctx.output()
    _same_quant(ctx, x)
    bs = _block(ctx, "DepthToSpaceOptions")
    if len(x.shape) != 4 or x.shape[3] % (bs * bs):
        raise ctx.fail(f"input {list(x.shape)}: 4-D with depth divisible by {bs * bs} expected")
    n, h, w, cin = x.shape
    c = cin // (bs * bs)
    if list(y.shape) != [n, h * bs, w * bs, c]:
        raise ctx.fail(
            f"output shape {list(y.shape)} differs from the {[n, h * bs, w * bs, c]} the interpreter computes"
        )
    # out (n*h, i, w, (j, ch)) <- in[n*h][w][(i*bs + j)*c + ch]: j and ch are one contiguous run of bs*c
    dims, strides = [1, n * h, bs, w, bs * c], [0, w * cin, bs * c, cin, 1]
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    return Lowered(lambda _s: ex.Transpose(src, dst, dims, strides))


def lower_space_to_depth(ctx: OpContext) -> Lowered:
    x, y = ctx.input(0), ctx.output()
    _same_quant(ctx, x)
    bs = _block(ctx, "SpaceToDepthOptions")
    if len(x.shape) != 4 or x.shape[1] % bs or x.shape[2] % bs:
        raise ctx.fail(f"input {list(x.shape)}: 4-D with height and width divisible by {bs} expected")
    n, h, w, c = x.shape
    ho, wo = h // bs, w // bs
    if list(y.shape) != [n, ho, wo, bs * bs * c]:
        raise ctx.fail(
            f"output shape {list(y.shape)} differs from the {[n, ho, wo, bs * bs * c]} the interpreter computes"
        )
    # out (n*ho, wo, i, (j, ch)) <- in[(n*ho)*bs + i][wo*bs + j][ch]
    dims, strides = [1, n * ho, wo, bs, bs * c], [0, bs * w * c, bs * c, w * c, 1]
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    return Lowered(lambda _s: ex.Transpose(src, dst, dims, strides))
