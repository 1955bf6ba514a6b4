"""QUANTIZE (float32 -> int8/uint8; int8/uint8 -> int8/uint8) and DEQUANTIZE (int8/uint8 -> float32), rounded as
the interpreter."""

from __future__ import annotations

from edge_maas.kernels import executor as ex
from edge_maas.kernels.quantize_ref import quantize_multiplier
from edge_maas.kernels.ref.requantize import BLOCK, tables
from edge_maas.kernels.ref.requantize_mixed import tables as mixed_tables
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.activations import same_shape


def lower_quantize(ctx: OpContext) -> Lowered:
    x, y = ctx.input(0), ctx.output()
    same_shape(ctx)
    if x.dtype == "int8" and y.dtype == "int8":
        return _requantize(ctx)
    if x.dtype in ("int8", "uint8") and y.dtype in ("int8", "uint8"):
        return _requantize_mixed(ctx)
    if x.dtype != "float32" or y.dtype not in ("int8", "uint8"):
        raise ctx.fail(f"QUANTIZE from {x.dtype} to {y.dtype} is not supported "
                       "(float32 -> int8/uint8; int8/uint8 -> int8/uint8)")  # fmt: skip
    return _float_boundary(ctx, quantized=y)


def lower_dequantize(ctx: OpContext) -> Lowered:
    same_shape(ctx)
    if ctx.output().dtype != "float32":
        raise ctx.fail(f"DEQUANTIZE to {ctx.output().dtype} is not supported")
    if ctx.input(0).dtype not in ("int8", "uint8"):
        raise ctx.fail(f"DEQUANTIZE from {ctx.input(0).dtype} is not supported (int8 or uint8 -> float32)")
    return _float_boundary(ctx, quantized=ctx.input(0))


def _float_boundary(ctx: OpContext, quantized) -> Lowered:
    """float32 <-> int8/uint8 with the quantized side's (scale, zero point); the kernel picks the direction and
    the type from the arrays' dtypes."""
    scale, zp = ctx.qparams(quantized, quantized.dtype)
    src, dst = ctx.array(ctx.input(0)).reshape(-1), ctx.activation(ctx.output()).reshape(-1)
    return Lowered(lambda _s: ex.Quantize(src, dst, scale, zp))


def _requantize(ctx: OpContext) -> Lowered:
    """int8 -> int8: a function of one byte, so two 256-entry tables (see kernels/ref/requantize.py)."""
    x, y = ctx.input(0), ctx.output()
    (si, zi), (so, zo) = ctx.qparams(x), ctx.qparams(y)
    mult, shift = quantize_multiplier(si / so)
    up, away = tables(mult, shift, zi, zo)
    src, dst = ctx.array(x).reshape(-1), ctx.activation(y).reshape(-1)
    return Lowered(lambda _s: ex.Lut(src, dst, up, away, split=src.size - src.size % BLOCK))


def _requantize_mixed(ctx: OpContext) -> Lowered:
    """uint8 <-> int8 (and uint8 -> uint8): the same one-byte function, read and clamped per type;
    the tables hold output bytes and are indexed by input bytes, so the int8 Lut kernel runs it."""
    x, y = ctx.input(0), ctx.output()
    (si, zi), (so, zo) = ctx.qparams(x, x.dtype), ctx.qparams(y, y.dtype)
    mult, shift = quantize_multiplier(float(si) / float(so))  # quantize.cc Prepare: double division
    up, away = mixed_tables(mult, shift, zi, zo, x.dtype, y.dtype)
    src = ctx.array(x).reshape(-1).view("int8")
    dst = ctx.activation(y).reshape(-1).view("int8")
    return Lowered(lambda _s: ex.Lut(src, dst, up, away, split=src.size - src.size % BLOCK))
