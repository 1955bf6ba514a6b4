"""MEAN int8 reference: the interpreter's two int8 paths.

keep_dims over H, W of a 4-D input (optimized Mean): raw sums, multiplier
QuantizeMultiplier(in_scale / (n * out_scale)) with float32 arithmetic, a
float-rounded zero-point bias, and channels in blocks of 16 rounding ties up
with the c % 16 tail away from zero.  Everything else (QuantizedMeanOrSum):
sums minus n * zp, multiplier QuantizeMultiplier(in_scale / out_scale) rescaled
by 2^k / n in integers (k = floor(log2 n), clamped), ties away from zero."""

from __future__ import annotations

import numpy as np
from edge_maas.kernels.quantize_ref import quantize_multiplier


def mean_params(in_scale, in_zp, out_scale, out_zp, n: int, channels: int, keep_dims_hw: bool) -> dict:
    """pre_offset, mult, shift, post offset (out_zp) and round_up_below for the Mean kernel."""
    f = np.float32
    if keep_dims_hw:
        temp = f(f(in_zp) * f(in_scale) / f(out_scale))
        temp = temp + f(0.5) if temp > 0 else temp - f(0.5)
        bias = out_zp - int(temp)  # truncation toward zero, as static_cast<int32_t>
        mult, shift = quantize_multiplier(float(f(in_scale) / (f(n) * f(out_scale))))
        return dict(pre_offset=0, mult=mult, shift=shift, out_zp=bias, round_up_below=channels - channels % 16)
    mult, shift = quantize_multiplier(float(in_scale) / float(out_scale))
    k = min(n.bit_length() - 1, 32, 31 + shift)
    return dict(pre_offset=-in_zp * n, mult=(mult << k) // n, shift=shift - k, out_zp=out_zp, round_up_below=0)


def mean(x3, p: dict) -> np.ndarray:
    """x3 [outer, n, inner] int8 -> [outer, inner] int8."""
    from edge_maas.kernels.quantize_ref import requantize_channels

    acc = x3.astype(np.int64).sum(axis=1) + p["pre_offset"]
    c = acc.shape[-1]
    return requantize_channels(acc, [p["mult"]] * c, [p["shift"]] * c, p["out_zp"],
                               round_up_below=p["round_up_below"])  # fmt: skip
