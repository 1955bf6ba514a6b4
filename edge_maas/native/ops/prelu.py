"""PRELU on int8 (PyTorch / ONNX exports of face and super-resolution models): alpha, usually a constant shared
along H and W, broadcast over the input (kernels/c/prelu.c, numpy reference kernels/ref/prelu.py).

The multipliers follow PreluPrepare (activations.cc): ``input->params.scale / output->params.scale`` and
``input scale * alpha scale / output scale`` are float expressions, evaluated in float32 before
QuantizeMultiplier widens them to double."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.kernels.quantize_ref import quantize_multiplier
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.binary import binary_layout


def multipliers(si: float, sa: float, so: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """((m1, shift1), (m2, shift2)) as PreluPrepare computes them (float32 products and quotients)."""
    f = np.float32
    return quantize_multiplier(float(f(si) / f(so))), quantize_multiplier(float(f(si) * f(sa) / f(so)))


def lower(ctx: OpContext) -> Lowered:
    if len(ctx.op.inputs) != 2:
        raise ctx.fail(f"PRELU takes 2 inputs, got {len(ctx.op.inputs)}")
    x, alpha, y = ctx.input(0), ctx.input(1), ctx.output()
    (si, zi), (sa, za), (so, zo) = ctx.qparams(x), ctx.qparams(alpha), ctx.qparams(y)
    if list(y.shape) != list(x.shape):
        raise ctx.fail(f"output shape {list(y.shape)} differs from the input's {list(x.shape)}; the interpreter "
                       "requires alpha to broadcast into the input")  # fmt: skip
    in1, in2, out, dims, st1, st2 = binary_layout(ctx)
    (m1, s1), (m2, s2) = multipliers(si, sa, so)
    return Lowered(lambda _s: ex.Prelu(in1, in2, out, dims, st1, st2, in1_offset=-zi, in2_offset=-za,
                                       out_offset=zo, in1_mult=m1, in1_shift=s1, in2_mult=m2, in2_shift=s2,
                                       out_mult=0, out_shift=0))  # fmt: skip
