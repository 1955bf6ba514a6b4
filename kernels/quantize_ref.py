"""Pure-numpy references for kernels/quantize.pyx (slow, obviously right)."""

from __future__ import annotations

import math

import numpy as np


def quantize_multiplier(real: float) -> tuple[int, int]:
    """real ~= multiplier * 2^(shift - 31), multiplier in [2^30, 2^31) (tflite QuantizeMultiplier)."""
    if real == 0.0:
        return 0, 0
    mant, shift = math.frexp(real)
    # std::round (half away from zero), not Python's half-even round
    q = int(math.floor(mant * (1 << 31) + 0.5)) if mant > 0 else -int(math.floor(-mant * (1 << 31) + 0.5))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        shift, q = 30, (1 << 31) - 1
    return q, shift


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Blocks of 8: x * float32(1/scale), ties to even; the n % 8 tail:
    double(x) / double(scale), ties away from zero (as the interpreter)."""
    x = np.asarray(x, dtype=np.float32).ravel()
    blocked = x.size - x.size % 8
    inv = np.float32(1.0) / np.float32(scale)
    head = np.round((x[:blocked] * inv).astype(np.float64))
    tail = x[blocked:].astype(np.float64) / np.float64(np.float32(scale))
    tail = np.sign(tail) * np.floor(np.abs(tail) + 0.5)
    q = np.concatenate([head, tail]) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Blocks of 8 as q*s - zp*s in float32, the n % 8 tail as double(s)*(q - zp)."""
    s = np.float32(scale)
    q = np.asarray(q).ravel()
    blocked = q.size - q.size % 8
    head = q[:blocked].astype(np.float32) * s - np.float32(zero_point) * s
    tail = (np.float64(s) * (q[blocked:].astype(np.int64) - zero_point)).astype(np.float32)
    return np.concatenate([head, tail]).astype(np.float32)


def sat_rounding_doubling_high_mul(a: np.ndarray, b: int) -> np.ndarray:
    a = a.astype(np.int64)
    ab = a * np.int64(b)
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    s = ab + nudge
    q = np.sign(s) * (np.abs(s) // (1 << 31))  # truncate toward zero
    q = np.where((a == -(2**31)) & (b == -(2**31)), 2**31 - 1, q)
    return q.astype(np.int64)


def rounding_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    x = x.astype(np.int64)
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    left, right = max(shift, 0), max(-shift, 0)
    shifted = (x.astype(np.int64) << left).astype(np.int64)
    shifted = ((shifted + 2**31) % 2**32) - 2**31  # wrap to int32 as the C code does
    return rounding_divide_by_pot(sat_rounding_doubling_high_mul(shifted, multiplier), right)


def requantize(acc, multiplier: int, shift: int, zero_point: int, act_min: int = -128, act_max: int = 127):
    v = multiply_by_quantized_multiplier(np.asarray(acc, dtype=np.int32), multiplier, shift) + zero_point
    return np.clip(v, act_min, act_max).astype(np.int8)


def multiply_by_quantized_multiplier_up(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """ruy's output stage: SRDHM as above, then a right shift rounding ties up (toward +inf)."""
    left, right = max(shift, 0), max(-shift, 0)
    shifted = (x.astype(np.int64) << left).astype(np.int64)
    shifted = ((shifted + 2**31) % 2**32) - 2**31
    hm = sat_rounding_doubling_high_mul(shifted, multiplier)
    return (hm + ((1 << right) >> 1)) >> right


def requantize_channels(acc, mult, shift, zero_point, act_min=-128, act_max=127, round_up_below=0):
    """requantize along the last axis with per-channel (mult, shift); channels below
    round_up_below round ties up (ruy), the others away from zero (TFLite)."""
    acc = np.asarray(acc, dtype=np.int64)
    out = np.empty(acc.shape, np.int64)
    for c in range(acc.shape[-1]):
        fn = multiply_by_quantized_multiplier_up if c < round_up_below else multiply_by_quantized_multiplier
        out[..., c] = fn(acc[..., c], int(mult[c]), int(shift[c]))
    return np.clip(out + zero_point, act_min, act_max).astype(np.int8)
