"""aarch64: where the interpreter's built-in kernels depart from the x86 bytes, and how (docs/native.md, "The
interpreter on aarch64").

The native executor gives the x86 bytes everywhere (the zoo's committed outputs, kernels/ref/).  The interpreter's
aarch64 build does not: its conv / fully-connected output stage is ruy's single-rounding multiply, and a few other
kernels round differently.  A test that compares native with the interpreter states, per op, what the aarch64
interpreter computes instead (a formula: :func:`ruy_single_rounding`, :func:`dequantize_aarch64`) or how far it
may be (:data:`ONE_LSB`); :func:`check` then asserts that every position where the interpreter differs from native
is explained by it.  On x86-64 the comparison stays exact and these departures are never consulted."""

from __future__ import annotations

import platform
from collections.abc import Callable

import numpy as np

AARCH64 = platform.machine().lower() in ("aarch64", "arm64")

#: the interpreter may be 1 LSB (int8) or 1 float32 ulp away from the x86 bytes at single positions
ONE_LSB = "one_lsb"

#: the ops whose aarch64 interpreter kernels depart from the x86 bytes (docs/native.md)
DEPARTING_OPS = frozenset({"CONV_2D", "FULLY_CONNECTED", "HARD_SWISH", "SOFTMAX", "DEQUANTIZE"})

#: a departure: ONE_LSB, or a function feed -> {output name: what the aarch64 interpreter computes}
Departure = str | Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def ruy_single_rounding(acc, mult, shift, zero_point, act_min=-128, act_max=127) -> np.ndarray:
    """The aarch64 interpreter's conv / FC output stage (ruy): acc * mult / 2^(31 - shift) rounded ONCE, ties up.

    ruy's arm64 kernels apply `sqdmulh` (doubling high multiply, truncating) then `srshl` (rounding right shift);
    floor(floor(a / 2^31) + 2^(n-1)) / 2^n) = floor((a + 2^(30+n)) / 2^(31+n)), so the pair is one rounding of
    the exact product.  x86 (gemmlowp's SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT) rounds
    twice.  acc [..., channels]; mult, shift per channel (right shifts only: shift <= 0).
    """
    acc = np.asarray(acc, np.int64)
    out = np.empty(acc.shape, np.int64)
    for c in range(acc.shape[-1]):
        m, s = int(mult[c]), int(shift[c])
        assert s <= 0, "a left shift takes ruy's other path (sshl first), not modelled here"
        total = 31 - s
        prod = acc[..., c].astype(object) * m  # exact: acc * mult needs up to 63 bits
        out[..., c] = np.array([(v + (1 << (total - 1))) >> total for v in prod.ravel()], np.int64).reshape(prod.shape)
    return np.clip(out + zero_point, act_min, act_max).astype(np.int8)


def dequantize_aarch64(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The aarch64 interpreter's int8 DEQUANTIZE: its blocks of 8 compute x86's q*s - zp*s with the multiply and
    the subtraction fused (one fused multiply-add, so one rounding instead of two: the aarch64 build contracts the
    float expression); the n % 8 tail is double(s) * (q - zp), as on x86 (kernels/quantize_ref.py dequantize).

    float64 holds q*s and q*s - float32(zp*s) exactly (at most 33 significant bits), so one float32 cast of it is
    the fused result."""
    s = np.float32(scale)
    q = np.asarray(q).ravel()
    blocked = q.size - q.size % 8
    zps = np.float64(np.float32(zero_point) * s)
    head = (q[:blocked].astype(np.float64) * np.float64(s) - zps).astype(np.float32)
    tail = (np.float64(s) * (q[blocked:].astype(np.int64) - zero_point)).astype(np.float32)
    return np.concatenate([head, tail]).astype(np.float32)


def _one_lsb(native: np.ndarray, interp: np.ndarray) -> np.ndarray:
    if native.dtype.kind == "f":  # 1 float32 ulp
        step = np.abs(np.nextafter(native, np.float32(np.inf), dtype=native.dtype) - native)
        return np.abs(interp.astype(np.float64) - native.astype(np.float64)) <= step
    return np.abs(interp.astype(np.int64) - native.astype(np.int64)) <= 1


def check(name: str, native: np.ndarray, interp: np.ndarray, departure: Departure | None,
          alternative: np.ndarray | None = None) -> int:  # fmt: skip
    """On aarch64: assert that wherever the interpreter's ``interp`` differs from ``native`` (the x86 bytes), it
    is the documented departure: equal to ``alternative`` (what ``departure`` computes) or, for ONE_LSB, 1 LSB /
    1 ulp away.  Returns the number of departing positions.  Without a departure the bytes must be equal."""
    differ = native != interp
    if not differ.any():
        return 0
    n = int(differ.sum())
    where = f"{name}: the aarch64 interpreter differs from native (the x86 bytes) at {n} of {native.size} positions"
    if departure is None:
        raise AssertionError(f"{where}, and no departure is documented for this op")
    if departure == ONE_LSB:
        ok = _one_lsb(native, interp)
        assert ok[differ].all(), f"{where}, {int((~ok & differ).sum())} of them more than 1 LSB / ulp away"
    else:
        assert alternative is not None
        ok = interp == alternative
        assert ok[differ].all(), f"{where}, {int((~ok & differ).sum())} of them not the documented formula's value"
    return n
