"""BATCH_MATMUL on int8 (attention in transformer / conformer models: both operands activations, or a constant
right-hand side): kernels/c/batch_matmul.c, numpy reference kernels/ref/batch_matmul.py.  Ranks 2 to 5, batch axes
broadcast, adj_x / adj_y.  The multiplier is GetQuantizedConvolutionMultipler's without bias: the two input
scales multiplied in float32, then divided by the output scale in double (kernel_util.cc)."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.kernels.quantize_ref import quantize_multiplier
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.shapes import broadcast_shape, contiguous_strides


def multiplier(sl: float, sr: float, so: float) -> tuple[int, int]:
    return quantize_multiplier(float(np.float32(sl) * np.float32(sr)) / float(so))


def lower(ctx: OpContext) -> Lowered:
    if len(ctx.op.inputs) != 2:
        raise ctx.fail(f"BATCH_MATMUL takes 2 inputs, got {len(ctx.op.inputs)}")
    lhs, rhs, y = ctx.input(0), ctx.input(1), ctx.output()
    (sl, zl), (sr, zr), (so, zo) = ctx.qparams(lhs), ctx.qparams(rhs), ctx.qparams(y)
    o = ctx.op.options
    adj_x, adj_y = (bool(o.adjX), bool(o.adjY)) if type(o).__name__ == "BatchMatMulOptionsT" else (False, False)
    ls, rs = [int(d) for d in lhs.shape], [int(d) for d in rhs.shape]
    if not (2 <= len(ls) <= 5 and 2 <= len(rs) <= 5):
        raise ctx.fail(f"operand ranks {len(ls)} and {len(rs)}; 2 to 5 supported (as the interpreter)")
    a_rows, k = (ls[-1], ls[-2]) if adj_x else (ls[-2], ls[-1])
    k_r, cols = (rs[-1], rs[-2]) if adj_y else (rs[-2], rs[-1])
    if k != k_r:
        raise ctx.fail(f"inner dimensions differ: {k} (lhs) and {k_r} (rhs)")
    try:
        batch = broadcast_shape(ls[:-2], rs[:-2])
    except ValueError:
        raise ctx.fail(f"batch dimensions {ls[:-2]} and {rs[:-2]} do not broadcast") from None
    if list(y.shape) != [*batch, a_rows, cols]:
        raise ctx.fail(
            f"output shape {list(y.shape)} differs from the {[*batch, a_rows, cols]} the interpreter computes"
        )
    b3 = [1] * (3 - len(batch)) + batch

    def batch_strides(shape):
        full = [1] * (5 - len(shape)) + shape
        st = contiguous_strides(full)[:3]
        return [0 if full[i] == 1 else st[i] for i in range(3)]

    lhs_rs, lhs_ks = (1, a_rows) if adj_x else (k, 1)
    rhs_ks, rhs_cs = (1, k) if adj_y else (cols, 1)
    mult, shift = multiplier(sl, sr, so)
    n_scratch = (a_rows + cols) * k  # int16: both operands widened
    lv, rv, out = ctx.array(lhs).reshape(-1), ctx.array(rhs).reshape(-1), ctx.activation(y).reshape(-1)

    geometry = {"rows": a_rows, "cols": cols, "depth": k, "lhs_rs": lhs_rs, "lhs_ks": lhs_ks, "rhs_ks": rhs_ks,
                "rhs_cs": rhs_cs}  # fmt: skip

    def make(scratch: np.ndarray):
        return ex.BatchMatMul(lv, rv, out, b3, batch_strides(ls), batch_strides(rs), **geometry, lhs_offset=-zl,
                              rhs_offset=-zr, out_zp=zo, mult=mult, shift=shift,
                              scratch=scratch.view(np.int16)[:n_scratch])  # fmt: skip

    return Lowered(make, n_scratch * 2)
