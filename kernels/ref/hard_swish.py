"""HARD_SWISH int8 reference: TFLite's int16 fixed-point pipeline (gemmlowp rounding,
ties away from zero; checked position by position against the interpreter: no
block/tail split here).  A function of one byte, so the executor runs it as a table."""

from __future__ import annotations

import numpy as np
from edge_maas.kernels.quantize_ref import quantize_multiplier

I16_MIN, I16_MAX = -(2**15), 2**15 - 1


def params(in_scale: float, out_scale: float) -> dict:
    """Prepare(): multipliers in float32 arithmetic, downscaled to int16 fixed point."""
    f = np.float32
    hires = f(1.0 / 128.0) * f(in_scale)
    out_m, out_e = quantize_multiplier(float(hires / f(out_scale)))
    relu_m, relu_e = quantize_multiplier(float(hires / f(3.0 / 32768.0)))
    return {"out_mult": _down16(out_m), "out_exp": out_e, "relu_mult": _down16(relu_m), "relu_exp": relu_e}


def _down16(m: int) -> int:
    return I16_MAX if m >= 2**31 - 1 - (1 << 15) else (m + (1 << 15)) >> 16


def _sat16(v):
    return np.clip(v, I16_MIN, I16_MAX)


def _srdhm16(a, b: int):
    ab = a.astype(np.int64) * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    s = ab + nudge
    return _sat16(np.sign(s) * (np.abs(s) // (1 << 15)))


def _rdbpot(x, e: int):
    if e <= 0:
        return x
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > thr)


def hard_swish(x, in_zp: int, out_zp: int, p: dict) -> np.ndarray:
    v = x.astype(np.int64) - in_zp
    hires = v * 128
    pre_out = _srdhm16(hires, p["out_mult"])
    relu = hires
    if p["relu_exp"] > 0:
        relu = _sat16(relu << (p["relu_exp"] - 1))
    relu = _srdhm16(relu, p["relu_mult"])
    if p["relu_exp"] > 0:
        relu = _sat16(relu << 1)
    if p["relu_exp"] < 0:
        relu = _rdbpot(relu, -p["relu_exp"])
    relu = (relu + (1 << 15)) >> 1
    prod = relu * pre_out  # SaturatingDoublingHighMul: truncating
    pre = np.where((relu == I16_MIN) & (pre_out == I16_MIN), I16_MAX, np.sign(prod) * (np.abs(prod) // (1 << 15)))
    out = _rdbpot(pre, -p["out_exp"]) + out_zp
    return np.clip(out, -128, 127).astype(np.int8)
