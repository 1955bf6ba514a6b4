/* TFLite's integer fixed-point rules (gemmlowp semantics), as static inline C.
 * Written from the definitions in tflite's kernels/internal/common.h; every
 * optimized kernel in this folder requantizes through these so that results
 * match the interpreter's built-in kernels byte for byte. */
#ifndef EDGE_MAAS_FIXEDPOINT_H
#define EDGE_MAAS_FIXEDPOINT_H

#include <stdint.h>

/* (a * b * 2) >> 31 with rounding to nearest, ties away from zero; the one
 * overflow case (both INT32_MIN) saturates. */
static inline int32_t em_sat_rounding_doubling_high_mul(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    /* gemmlowp: (ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31 truncated toward zero.
     * That equals floor((ab + 2^30) / 2^31) for every ab (ceil(n/d) = floor((n+d-1)/d)),
     * an arithmetic shift: no division, no branch. */
    return (int32_t)(((int64_t)a * (int64_t)b + (1LL << 30)) >> 31);
}

/* x / 2^exponent, rounding to nearest with ties away from zero. */
static inline int32_t em_rounding_divide_by_pot(int32_t x, int exponent) {
    int32_t mask = (int32_t)((1LL << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^shift, multiplier a Q31 value in [2^30, 2^31). */
static inline int32_t em_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    return em_rounding_divide_by_pot(
        em_sat_rounding_doubling_high_mul((int32_t)((uint32_t)x << left), multiplier), right);
}

/* As above but the final shift rounds ties up (toward +infinity): ruy's GEMM
 * output stage, used by the interpreter's CONV_2D and FULLY_CONNECTED. */
static inline int32_t em_multiply_by_quantized_multiplier_up(int32_t x, int32_t multiplier, int shift) {
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    int32_t hm = em_sat_rounding_doubling_high_mul((int32_t)((uint32_t)x << left), multiplier);
    return right == 0 ? hm : (hm >> right) + ((hm >> (right - 1)) & 1);
}

static inline int8_t em_clamp_i8(int32_t v, int32_t lo, int32_t hi) {
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

#endif
