"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with their int32 accumulators computed by
torch on the accelerator, then requantized by the native C output stage (RequantizeRows).

Why float64: every product (x - zp) * w is an integer of magnitude <= 255 * 127, and a
sum of up to 2^37 of them stays below 2^53, so float64 GEMMs give the exact int32
accumulators in any summation order (float32 would not, beyond ~500 terms).  im2col is
explicit (unfold + matmul) so no convolution algorithm (FFT, Winograd) can round.  The
output stage is the native kernels' own, hence the bytes equal the interpreter's."""

from __future__ import annotations

import numpy as np

from edge_maas.kernels import executor as ex
from edge_maas.native.lowering import Lowered, OpContext
from edge_maas.native.ops.conv_common import conv_setup, depthwise_setup, fully_connected_setup


def _torch():
    import torch
    import torch.nn.functional as F

    return torch, F


class TorchGemmOp:
    """One op: accumulate(x) -> int32 [rows, channels] on the device, then the C output stage."""

    def __init__(self, name: str, inp: np.ndarray, out: np.ndarray, accumulate, requant_args: dict, device):
        self.name = name
        self.inp = inp
        self.acc = np.zeros((requant_args["rows"], requant_args["channels"]), np.int32)
        self._accumulate = accumulate
        self._device = device
        self._requant = ex.RequantizeRows(self.acc, out.reshape(-1), **requant_args)

    @property
    def arrays(self):
        return (self.acc, *self._requant.arrays)

    def run(self) -> None:
        torch, _ = _torch()
        x = torch.from_numpy(self.inp).to(self._device, torch.float64)
        acc = self._accumulate(x)  # float64, exact integers
        self.acc[...] = acc.to(torch.int64).cpu().numpy()
        self._requant.run()


def _stage_args(st, rows: int, channels: int, round_up_below: int) -> dict:
    return dict(mult=st.mult, shift=st.shift, rows=rows, channels=channels, out_zp=st.out_zp,
                act_min=st.act_min, act_max=st.act_max, round_up_below=round_up_below)  # fmt: skip


def _windows(x, g, kh, kw, o, F):
    """NHWC (offset applied) -> im2col [N, C*kh*kw, out_h*out_w], zero padding in the offset domain."""
    eff_h, eff_w = (kh - 1) * o.dilationHFactor + 1, (kw - 1) * o.dilationWFactor + 1
    pb = max(0, (g.out_h - 1) * o.strideH + eff_h - g.in_h - g.pad_top)
    pr = max(0, (g.out_w - 1) * o.strideW + eff_w - g.in_w - g.pad_left)
    x = F.pad(x.permute(0, 3, 1, 2), (g.pad_left, pr, g.pad_top, pb))
    return F.unfold(x, (kh, kw), dilation=(o.dilationHFactor, o.dilationWFactor), stride=(o.strideH, o.strideW))


def lower_conv(ctx: OpContext, device) -> Lowered:
    torch, F = _torch()
    op = conv_setup(ctx)
    o, g, st, oc, kh, kw = op.opts, op.geo, op.stage, op.out_c, op.k_h, op.k_w
    # unfold orders a window as (channel, kh, kw); TFLite weights are (oc, kh, kw, ic)
    w = torch.from_numpy(st.weights.astype(np.float64).transpose(0, 3, 1, 2).reshape(oc, -1)).to(device)
    bias = torch.from_numpy(st.bias[:oc].astype(np.float64)).to(device)

    def accumulate(x):
        cols = _windows(x + st.in_offset, g, kh, kw, o, F)  # [N, ic*kh*kw, L]
        return (w @ cols).transpose(1, 2).reshape(-1, oc) + bias  # [N*L, oc], rows in NHWC order

    rows = g.batch * g.out_h * g.out_w
    inp, out = ctx.activation(ctx.input(0)), ctx.activation(ctx.output())
    args = _stage_args(st, rows, oc, ex.ROUND_ALL_UP)  # ruy rounds every channel's ties up
    return Lowered(lambda scratch: TorchGemmOp(ctx.where, inp, out, accumulate, args, device))


def lower_depthwise(ctx: OpContext, device) -> Lowered:
    torch, F = _torch()
    op = depthwise_setup(ctx)
    o, g, st, oc, kh, kw = op.opts, op.geo, op.stage, op.out_c, op.k_h, op.k_w
    c, m = g.in_c, oc // g.in_c
    # output channel c*m + j reads input channel c: weights [kh, kw, c*m+j] -> [c, j, kh*kw]
    w = torch.from_numpy(st.weights.reshape(kh * kw, c, m).transpose(1, 2, 0).astype(np.float64)).to(device)
    bias = torch.from_numpy(st.bias[:oc].astype(np.float64)).to(device)

    def accumulate(x):
        cols = _windows(x + st.in_offset, g, kh, kw, o, F)  # [N, c*kh*kw, L]
        n, _, length = cols.shape
        acc = torch.einsum("nckl,cjk->nlcj", cols.reshape(n, c, kh * kw, length), w)
        return acc.reshape(-1, oc) + bias

    rows = g.batch * g.out_h * g.out_w
    inp, out = ctx.activation(ctx.input(0)), ctx.activation(ctx.output())
    args = _stage_args(st, rows, oc, oc - oc % 8)  # 8-channel blocks round ties up, the tail away
    return Lowered(lambda scratch: TorchGemmOp(ctx.where, inp, out, accumulate, args, device))


def lower_fully_connected(ctx: OpContext, device) -> Lowered:
    torch, _ = _torch()
    d = fully_connected_setup(ctx)
    rows, features, units, st = d.rows, d.features, d.units, d.stage
    x, y = ctx.input(0), ctx.output()
    wt = torch.from_numpy(st.weights.astype(np.float64).T.copy()).to(device)
    bias = torch.from_numpy(st.bias[:units].astype(np.float64)).to(device)

    def accumulate(x):
        return (x.reshape(rows, features) + st.in_offset) @ wt + bias

    inp, out = ctx.activation(x), ctx.activation(y)
    args = _stage_args(st, rows, units, ex.ROUND_ALL_UP)
    return Lowered(lambda scratch: TorchGemmOp(ctx.where, inp, out, accumulate, args, device))


LOWERINGS = {"CONV_2D": lower_conv, "DEPTHWISE_CONV_2D": lower_depthwise, "FULLY_CONNECTED": lower_fully_connected}
