"""Float lookup-table int8 ops (TANH, GELU, ELU, EXP) reference: the interpreter's LUTPopulateInt8
(tflite/kernels/internal/common.h) with each op's float transform, one value at a time in float32.

The float functions come from the C library through ctypes (tanhf, erfcf, expm1f, expf), as the interpreter's std::tanh(float)
and std::erfc(float) call them: numpy's float32 tanh is another implementation and differs in the last bit on
some inputs, which moves rounding ties.  A float outside int32 (or NaN) converts as the interpreter's build does,
measured: saturating, NaN -> 0 (kernels/c/lut_float.c)."""

from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

_libm = ctypes.CDLL(ctypes.util.find_library("m") or None)
for _name in ("tanhf", "erfcf", "expm1f", "expf"):
    getattr(_libm, _name).restype = ctypes.c_float
    getattr(_libm, _name).argtypes = [ctypes.c_float]

f32 = np.float32


def _tanh(x: np.float32) -> np.float32:
    return f32(_libm.tanhf(float(x)))


def _gelu(x: np.float32) -> np.float32:  # reference/gelu.h GeluTransform
    return f32(0.5) * x * f32(_libm.erfcf(float(x * f32(-math.sqrt(0.5)))))


_SQRT_2_OVER_PI = f32((2 / math.sqrt(math.pi)) * math.sqrt(0.5))  # M_2_SQRTPI * M_SQRT1_2, rounded once


def _gelu_approximate(x: np.float32) -> np.float32:  # GeluTransformApproximate, left to right
    return f32(0.5) * x * (f32(1) + _tanh(_SQRT_2_OVER_PI * (x + f32(0.044715) * x * x * x)))


def _elu(x: np.float32) -> np.float32:  # EluPrepare
    return f32(_libm.expm1f(float(x))) if x < 0 else x


def _exp(x: np.float32) -> np.float32:  # exp.cc Prepare; inf above ~88.7
    return f32(_libm.expf(float(x)))


TRANSFORMS = {"tanh": _tanh, "gelu": _gelu, "gelu_approximate": _gelu_approximate, "elu": _elu, "exp": _exp}


def _to_int32(v: float) -> int:
    if math.isnan(v):
        return 0
    return int(min(max(v, -(2.0**31)), 2.0**31 - 1))


def float_lut_table(kind: str, in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """256 int8 entries indexed by the (uint8) input value."""
    fn = TRANSFORMS[kind]
    with np.errstate(over="ignore", invalid="ignore"):
        inv = f32(1) / f32(out_scale)
        table = np.empty(256, np.int8)
        for v in range(-128, 128):
            y = fn(f32(in_scale) * f32(v - in_zp))
            r = f32(y * inv)
            rounded = f32(math.copysign(math.floor(abs(float(r)) + 0.5), float(r))) if math.isfinite(r) else r
            q = _to_int32(float(f32(rounded + f32(out_zp))))
            table[v & 0xFF] = min(127, max(-128, q))
    return table
