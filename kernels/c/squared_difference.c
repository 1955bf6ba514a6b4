/* SQUARED_DIFFERENCE on int8 with broadcasting, as the interpreter's int8 kernel (squared_difference.cc: scalar,
 * one rounding rule everywhere):
 *     d = MBQM((x1 - zp1) << 7, m1, s1) - MBQM((x2 - zp2) << 7, m2, s2)      (both multipliers < 1)
 *     out = clamp(MBQM(d * d, m_out, s_out) + zp_out)
 * MultiplyByQuantizedMultiplierSmallerThanOneExp: the rounding doubling high multiply, then a right shift rounding
 * ties away from zero.  em_binary_args as ADD (left_shift = 7). */
#include "binary.h"
#include "fixedpoint.h"

void em_squared_difference(const void *args) {
    const em_binary_args *a = (const em_binary_args *)args;
    const int s1 = a->s1[4], s2 = a->s2[4], n = a->dims[4];
    EM_BINARY_ROWS(a, {
        for (int i = 0; i < n; i++) {
            const int32_t v1 = (p1[(long)i * s1] + a->in1_offset) * (1 << a->left_shift);
            const int32_t v2 = (p2[(long)i * s2] + a->in2_offset) * (1 << a->left_shift);
            const int32_t d = em_multiply_by_quantized_multiplier(v1, a->in1_mult, a->in1_shift) -
                              em_multiply_by_quantized_multiplier(v2, a->in2_mult, a->in2_shift);
            const int32_t r = em_multiply_by_quantized_multiplier(d * d, a->out_mult, a->out_shift) + a->out_offset;
            a->out[o + i] = em_clamp_i8(r, -128, 127);
        }
    });
}
