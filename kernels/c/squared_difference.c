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
    /* locals: int8_t stores may alias anything, *a included */
    const int s1 = a->s1[4], s2 = a->s2[4], n = a->dims[4], ls = a->left_shift;
    const int32_t off1 = a->in1_offset, off2 = a->in2_offset, out_off = a->out_offset;
    const int32_t m1 = a->in1_mult, sh1 = a->in1_shift, m2 = a->in2_mult, sh2 = a->in2_shift;
    const int32_t mo = a->out_mult, sho = a->out_shift;
    int8_t *out = a->out;
    EM_BINARY_ROWS(a, {
        for (int i = 0; i < n; i++) {
            const int32_t v1 = (p1[(long)i * s1] + off1) * (1 << ls);
            const int32_t v2 = (p2[(long)i * s2] + off2) * (1 << ls);
            const int32_t d = em_multiply_by_quantized_multiplier(v1, m1, sh1) -
                              em_multiply_by_quantized_multiplier(v2, m2, sh2);
            out[o + i] = em_clamp_i8(em_multiply_by_quantized_multiplier(d * d, mo, sho) + out_off, -128, 127);
        }
    });
}
