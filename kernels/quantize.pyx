# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""(De)quantization and int32 -> int8 requantization with TFLite's rounding.

Reference: kernels/quantize_ref.py.  The fixed-point helpers live in
fixedpoint.h so that every later kernel requantizes through the same code.
"""

import numpy as np

from libc.stdint cimport int8_t, int32_t

from edge_maas.kernels.executor import Quantize


cdef extern from "fixedpoint.h":
    int32_t em_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) nogil
    int8_t em_clamp_i8(int32_t v, int32_t lo, int32_t hi) nogil


def quantize(x, float scale, int zero_point, out):
    """out = clamp(round(x / scale) + zero_point), rounded as the interpreter's optimized kernel
    (see c/quantize.c: blocks of 8 lanes round x * (1/scale) ties-to-even, the n % 8 tail
    rounds double(x) / double(scale) ties away).  float32 [n] -> int8 [n]."""
    _boundary(x, np.float32, out, np.int8, scale, zero_point)


def dequantize(q, float scale, int zero_point, out):
    """out = real value of q, rounded exactly as the interpreter's optimized kernel (see c/quantize.c)."""
    _boundary(q, np.int8, out, np.float32, scale, zero_point)


def _boundary(src, src_dtype, dst, dst_dtype, float scale, int zero_point):
    if src.dtype != src_dtype or dst.dtype != dst_dtype:
        raise ValueError(f"expected {np.dtype(src_dtype).name} -> {np.dtype(dst_dtype).name}, got {src.dtype} -> {dst.dtype}")
    if dst.shape[0] != src.shape[0]:
        raise ValueError(f"out has {dst.shape[0]} elements, input has {src.shape[0]}")
    if src.shape[0]:
        Quantize(src, dst, scale, zero_point).run()


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
