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
    dims = pad5(shape)
    in1 = ctx.array(a).reshape(-1) if a.size else ctx.array(a)
    in2 = ctx.array(b).reshape(-1) if b.size else ctx.array(b)
    out = ctx.activation(y).reshape(-1)
    return in1, in2, out, dims, broadcast_strides(pad5(a.shape), dims), broadcast_strides(pad5(b.shape), dims)


def fused_range(ctx: OpContext, options: str) -> tuple[int, int]:
    opts = ctx.op.options
    fused = getattr(opts, "fusedActivationFunction", 0) if opts is not None else 0
    scale, zp = ctx.qparams(ctx.output())
    return activation_range(fused, scale, zp, ctx.where)
