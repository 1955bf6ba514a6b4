"""aarch64: where the interpreter's built-in kernels depart from the x86 bytes, and how (docs/native.md, "The
interpreter on aarch64").

The native executor gives the x86 bytes everywhere (the zoo's committed outputs, kernels/ref/).  The interpreter's
aarch64 build does not: its conv / fully-connected output stage is ruy's single-rounding multiply, its 3x3
depthwise kernel shifts left after the high multiply, its DEQUANTIZE and LOG_SOFTMAX float expressions are fused,
and its SOFTMAX / HARD_SWISH kernels round some values otherwise.  A test that compares native with the interpreter
states, per op, what the aarch64 interpreter computes instead (a formula: :func:`ruy_single_rounding`,
:func:`depthwise_3x3_rounding` where :func:`depthwise_3x3_supported`, :func:`log_softmax_aarch64`,
:func:`dequantize_aarch64`) or, where no formula is pinned (SOFTMAX, HARD_SWISH), how far it may be
(:data:`ONE_LSB`); :func:`check` then asserts that every position where the interpreter differs from native is
explained by it.  On x86-64 the comparison stays exact and these departures are never consulted."""

from __future__ import annotations

import platform
from collections.abc import Callable

import numpy as np

AARCH64 = platform.machine().lower() in ("aarch64", "arm64")

#: the interpreter may be 1 LSB (int8) or 1 float32 ulp away from the x86 bytes at single positions
ONE_LSB = "one_lsb"

#: the ops whose aarch64 interpreter kernels depart from the x86 bytes (docs/native.md)
DEPARTING_OPS = frozenset(
    {"CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D", "HARD_SWISH", "SOFTMAX", "LOG_SOFTMAX", "DEQUANTIZE"}
)

#: a departure: ONE_LSB, or a function feed -> {output name: what the aarch64 interpreter computes}
Departure = str | Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def ruy_single_rounding(acc, mult, shift, zero_point, act_min=-128, act_max=127) -> np.ndarray:
    """The aarch64 interpreter's conv / FC output stage (ruy's arm64 kernels, every shift): acc * mult /
    2^(31 - shift) rounded ONCE, ties up.

    ruy/kernel_arm64.cc (Kernel8bitNeon, Kernel8bitNeonDotprod and their 1-column / A55 variants, since ruy
    be760b6 "Simplify quantized multiplier"): v8 = -1 (`mvni v8.4s, #0`), the exponent e split into
    `smin v11 = min(e, -1)` and `sub v12 = e - v11`, then `sshl` by v12 (a left shift by max(e + 1, 0), wrapping
    in int32), `sqdmulh` (doubling high multiply, truncating: floor(x * mult / 2^31)) and `srshl` by v11 (a
    rounding right shift by n = max(-e, 1), ties up).  floor((floor(a / 2^31) + 2^(n-1)) / 2^n) =
    floor((a + 2^(30+n)) / 2^(31+n)), so the three are one rounding of the exact product for every e (the
    extra left shift by 1 and right shift by 1 make a left shift one rounding too).  x86 (gemmlowp's
    SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT) rounds twice where e < 0; where e >= 0 it has
    no right shift and gives the same bytes unless acc << max(e+1, 0) or acc << e leaves int32.
    acc [..., channels]; mult, shift per channel.
    """
    acc = np.asarray(acc, np.int64)
    out = np.empty(acc.shape, np.int64)
    for c in range(acc.shape[-1]):
        m, e = int(mult[c]), int(shift[c])
        left, right = max(e + 1, 0), max(-e, 1)
        x = ((acc[..., c] << left) + 2**31) % 2**32 - 2**31  # sshl: int32 wraps
        y = (x * m) >> 31  # sqdmulh (|x * m| < 2^62: exact in int64; saturates only for x = m = -2^31)
        out[..., c] = (y + (1 << (right - 1))) >> right  # srshl by -right
    return np.clip(out + zero_point, act_min, act_max).astype(np.int8)


def depthwise_3x3_supported(in_shape, k, stride, dilation, pad, depth_mult, out_hw) -> bool:
    """Whether the aarch64 interpreter runs DEPTHWISE_CONV_2D int8 through its 3x3 NEON kernel: TFLite's
    Fast3x3FilterKernelSupported<kPerChannelInt8> (kernels/internal/optimized/depthwiseconv_3x3_filter_common.h),
    called by optimized_integer_ops::DepthwiseConvWithRounding (integer_ops/depthwise_conv.h) under
    `__aarch64__` with output_shift 0 (so per-channel left shifts are not refused).  in_shape (b, h, w, c);
    k, stride, dilation, pad: (height, width) pairs, pad the before-padding TFLite computes; out_hw (oh, ow)."""
    _, h, w, c = in_shape
    (kh, kw), (sh, sw), (dh, dw), (ph, pw), (oh, ow) = k, stride, dilation, pad, out_hw
    if not (kh == kw == 3 and depth_mult == 1 and sh == sw and sh in (1, 2) and ph == pw and ph in (0, 1)
            and c % 8 == 0 and dh == dw == 1):  # fmt: skip
        return False
    x_end, y_end = (ow - 1) * sw - pw + 3, (oh - 1) * sh - ph + 3
    if pw == 0:
        return x_end <= w and y_end <= h
    if x_end > w + 1 or y_end > h + 1:
        return False
    return h == w if 1 in (h, w) else True


def depthwise_3x3_rounding(acc, mult, shift, zero_point, act_min=-128, act_max=127) -> np.ndarray:
    """The aarch64 interpreter's 3x3 DEPTHWISE_CONV_2D int8 kernel's output stage (see depthwise_3x3_supported):
    `sqrdmulh` by the channel's multiplier (rounding doubling high multiply: floor((acc * mult + 2^30) / 2^31))
    THEN `sqrshl` by its shift (a saturating left shift when shift > 0, a rounding right shift, ties up, when
    shift < 0), `sqxtn`, `sqadd` of the zero point, `sqxtn`, `smax`/`smin` (the asm of
    DepthwiseConvWindowPerChannel / DepthwiseConvPartialPerChannel in
    kernels/internal/optimized/integer_ops/depthwise_conv_3x3_filter.h).  x86 (its general kernel's
    optimized_ops::Quantize, and native) shifts left BEFORE the high multiply: (acc << shift) * mult / 2^31
    rounded, so with a left shift of s the aarch64 value is round(acc * mult / 2^31) * 2^s, up to 2^(s-1) away;
    right shifts round as x86's blocks of 8 (ties up).  acc [..., channels]; mult, shift per channel."""
    acc = np.asarray(acc, np.int64)
    out = np.empty(acc.shape, np.int64)
    for c in range(acc.shape[-1]):
        m, s = int(mult[c]), int(shift[c])
        y = (acc[..., c] * m + (1 << 30)) >> 31  # sqrdmulh (saturates only for acc = m = -2^31)
        y = np.clip(y << s, -(2**31), 2**31 - 1) if s >= 0 else (y + (1 << (-s - 1))) >> -s  # sqrshl
        out[..., c] = y
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


def fma_f32(a, b, c) -> np.ndarray:
    """float32(a * b + c) rounded once (a fused multiply-add), a, b, c float32 arrays (broadcast).

    a * b is exact in float64 (24 + 24 bits); the float64 sum t and its TwoSum error e are exact, and casting t
    to float32 rounds as the exact sum would unless t fell exactly on a float32 midpoint: there e says which
    way the exact value lies, and t moves one float64 ulp that way before the cast."""
    p = np.asarray(a, np.float32).astype(np.float64) * np.asarray(b, np.float32).astype(np.float64)
    c = np.asarray(c, np.float32).astype(np.float64)
    t = p + c
    bv = t - p
    e = (p - (t - bv)) + (c - bv)
    r = t.astype(np.float32)
    away = np.where(t > r, np.float32(np.inf), np.float32(-np.inf)).astype(np.float32)
    mid = (r.astype(np.float64) + np.nextafter(r, away).astype(np.float64)) / 2
    tie = (t == mid) & (e != 0) & (r.astype(np.float64) != t)
    return np.where(tie, np.nextafter(t, np.where(e > 0, np.inf, -np.inf)), t).astype(np.float32)


def log_softmax_aarch64(x2, table, in_scale: float, out_scale: float, out_zp: int) -> np.ndarray:
    """The aarch64 interpreter's int8 LOG_SOFTMAX: optimized_ops::LogSoftmax (kernels/internal/optimized/
    optimized_ops.h, the kGenericOptimized kernel) with both float expressions FUSED by the compiler (clang
    contracts a*b + c within an expression on aarch64, which always has FMA; the x86-64 build has none):
    precomputed = fma(in_scale, max, log_sum) / out_scale and log_prob = fma(in_scale / out_scale, x,
    -precomputed), one rounding each instead of two (kernels/ref/log_softmax.py is the x86 side: same table, same
    in-order sum and glibc logf).  The output moves by 1 where log_prob lands across a .5 (54 of 65 rows picked
    for it under qemu cortex-a72; 1 of 500,000 random values).  x2 [outer, depth] int8; table as
    executor.softmax_table(in_scale, 1.0)."""
    from edge_maas.kernels.ref.log_softmax import _libm

    f = np.float32
    si, so = f(in_scale), f(out_scale)
    scale = f(si / so)
    out = np.empty(x2.shape, np.int8)
    for i, row in enumerate(np.asarray(x2).astype(np.int64)):
        m = int(row.max())
        s = f(0)
        for v in table[255 - m + row]:  # in order, as the C loop (no multiply: nothing to fuse)
            s = f(s + v)
        log_sum = f(_libm.logf(float(s)))
        pre = f(fma_f32(si, f(m), log_sum) / so)
        prob = fma_f32(scale, row.astype(np.float32), -pre)
        q = np.rint(prob).astype(np.float32) + f(out_zp)
        out[i] = np.clip(q.astype(np.int64), -128, 127)
    return out


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
