# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""(De)quantization and int32 -> int8 requantization with TFLite's rounding.

Reference: kernels/quantize_ref.py.  The fixed-point helpers live in
fixedpoint.h so that every later kernel requantizes through the same code.
"""

from libc.math cimport nearbyint
from libc.math cimport round as c_round
from libc.stdint cimport int8_t, int32_t


cdef extern from "fixedpoint.h":
    int32_t em_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) nogil
    int8_t em_clamp_i8(int32_t v, int32_t lo, int32_t hi) nogil


def quantize(const float[::1] x, float scale, int zero_point, int8_t[::1] out):
    """out = clamp(round(x / scale) + zero_point), rounded as the interpreter's optimized kernel.

    That kernel works in blocks of 8 lanes computing x * float32(1/scale) with
    ties to even, and finishes the last n % 8 elements with the scalar
    round(double(x) / double(scale)), ties away from zero.  We follow the same split."""
    if out.shape[0] != x.shape[0]:
        raise ValueError(f"out has {out.shape[0]} elements, x has {x.shape[0]}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    cdef Py_ssize_t i, n = x.shape[0], blocked = n - n % 8
    cdef double v
    cdef float inv = 1.0 / scale
    cdef double dscale = scale
    with nogil:
        for i in range(n):
            if i < blocked:
                v = nearbyint(<double>(x[i] * inv)) + zero_point
            else:
                v = c_round(<double>x[i] / dscale) + zero_point
            out[i] = <int8_t>(-128 if v < -128 else (127 if v > 127 else v))


def dequantize(const int8_t[::1] q, float scale, int zero_point, float[::1] out):
    """out = real value of q, rounded exactly as the interpreter's optimized kernel does.

    That kernel works in blocks of 8 lanes computing q * scale - zero_point * scale
    in float32, and finishes the last n % 8 elements with the scalar
    double(scale) * (q - zero_point).  The two differ in the last bit on most
    inputs, so we follow the same split.  setup.py builds with -ffp-contract=off
    so no FMA changes the rounding."""
    if out.shape[0] != q.shape[0]:
        raise ValueError(f"out has {out.shape[0]} elements, q has {q.shape[0]}")
    cdef Py_ssize_t i, n = q.shape[0], blocked = n - n % 8
    cdef float zs = <float>zero_point * scale
    cdef double dscale = scale
    with nogil:
        for i in range(blocked):
            out[i] = <float>q[i] * scale - zs
        for i in range(blocked, n):
            out[i] = <float>(dscale * (q[i] - zero_point))


def requantize(const int32_t[::1] acc, int32_t multiplier, int shift, int zero_point,
               int8_t[::1] out, int act_min=-128, int act_max=127):
    """out = clamp(MultiplyByQuantizedMultiplier(acc, multiplier, shift) + zero_point)."""
    if out.shape[0] != acc.shape[0]:
        raise ValueError(f"out has {out.shape[0]} elements, acc has {acc.shape[0]}")
    if not -31 <= shift <= 30:
        raise ValueError(f"shift {shift} is outside [-31, 30]")
    if act_min > act_max or act_min < -128 or act_max > 127:
        raise ValueError(f"activation range [{act_min}, {act_max}] is not inside int8")
    cdef Py_ssize_t i, n = acc.shape[0]
    with nogil:
        for i in range(n):
            out[i] = em_clamp_i8(em_multiply_by_quantized_multiplier(acc[i], multiplier, shift) + zero_point,
                                 act_min, act_max)
