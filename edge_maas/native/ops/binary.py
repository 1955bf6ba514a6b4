"""What ADD and MUL share: operand layout with broadcasting, and the fused activation."""

from __future__ import annotations

from edge_maas.native.lowering import OpContext
from edge_maas.native.quant import activation_range
from edge_maas.native.shapes import broadcast_shape, broadcast_strides, pad5


def binary_layout(ctx: OpContext):
    """(in1, in2, out arrays, 5-D dims, in1 strides, in2 strides); constants become arrays too."""
    a, b, y = ctx.input(0), ctx.input(1), ctx.output()
    try:
        shape = broadcast_shape(a.shape, b.shape)
    except ValueError:
        raise ctx.fail(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    if list(y.shape) != shape:
        raise ctx.fail(f"output shape {list(y.shape)} != broadcast shape {shape}")
    if len(shape) > 5:
        raise ctx.fail(f"rank {len(shape)} > 5 is not supported")
    in1, in2, out = ctx.array(a).reshape(-1), ctx.array(b).reshape(-1), ctx.activation(y).reshape(-1)
    dims = pad5(shape)
    return (in1, in2, out, *collapse(dims, broadcast_strides(pad5(a.shape), dims), broadcast_strides(pad5(b.shape), dims)))


def collapse(dims, s1, s2):
    """Merge adjacent axes that both operands walk the same way, so the inner row is as long
    as possible.  The interpreter does the same before its vectorized loop, and its vector
    blocks (see c/add.c, c/mul.c) are counted along that row."""
    dims, s1, s2 = list(dims), list(s1), list(s2)
    for i in range(len(dims) - 2, -1, -1):
        if s1[i] == s1[i + 1] * dims[i + 1] and s2[i] == s2[i + 1] * dims[i + 1]:
            dims[i + 1] *= dims[i]
            del dims[i], s1[i], s2[i]
    pad = 5 - len(dims)
    return [1] * pad + dims, [0] * pad + s1, [0] * pad + s2


def fused_range(ctx: OpContext, options: str) -> tuple[int, int]:
    opts = ctx.op.options
    fused = getattr(opts, "fusedActivationFunction", 0) if opts is not None else 0
    scale, zp = ctx.qparams(ctx.output())
    return activation_range(fused, scale, zp, ctx.where)
