# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""(De)quantization and int32 -> int8 requantization with TFLite's rounding.

Reference: kernels/quantize_ref.py.  The fixed-point helpers live in
fixedpoint.h so that every later kernel requantizes through the same code.
"""

from libc.stdint cimport int8_t, int32_t


cdef extern from "fixedpoint.h":
    int32_t em_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) nogil
    int8_t em_clamp_i8(int32_t v, int32_t lo, int32_t hi) nogil


cdef extern from "c/em_kernels.h":
    ctypedef struct em_quant_args:
        const void *inp "in"
        void *out
        size_t n
        float scale
        int32_t zero_point
    void em_quantize_f32(const void *args) nogil
    void em_dequantize_s8(const void *args) nogil


def quantize(const float[::1] x, float scale, int zero_point, int8_t[::1] out):
    """out = clamp(round(x / scale) + zero_point), rounded as the interpreter's optimized kernel
    (see c/quantize.c: blocks of 8 lanes round x * (1/scale) ties-to-even, the n % 8 tail
    rounds double(x) / double(scale) ties away)."""
    if out.shape[0] != x.shape[0]:
        raise ValueError(f"out has {out.shape[0]} elements, x has {x.shape[0]}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if x.shape[0] == 0:
        return
    cdef em_quant_args a
    a.inp, a.out, a.n, a.scale, a.zero_point = &x[0], &out[0], x.shape[0], scale, zero_point
    with nogil:
        em_quantize_f32(&a)


def dequantize(const int8_t[::1] q, float scale, int zero_point, float[::1] out):
    """out = real value of q, rounded exactly as the interpreter's optimized kernel (see c/quantize.c)."""
    if out.shape[0] != q.shape[0]:
        raise ValueError(f"out has {out.shape[0]} elements, q has {q.shape[0]}")
    if q.shape[0] == 0:
        return
    cdef em_quant_args a
    a.inp, a.out, a.n, a.scale, a.zero_point = &q[0], &out[0], q.shape[0], scale, zero_point
    with nogil:
        em_dequantize_s8(&a)


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
