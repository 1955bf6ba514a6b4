/* SUB (int8): ADD's arithmetic with input 2's multiplier negated by the caller,
 * as the interpreter's sub.cc sets it up, but without ADD's int16 wrap-around:
 * measured on the interpreter, its SUB saturates like the scalar code at every
 * position (outputs far outside int8 clamp, they do not wrap).  Ties away from
 * zero throughout. */
#include "binary.h"
#include "requant.h"

static inline int8_t sub_one(const em_binary_args *a, int32_t x1, int32_t x2) {
    const int32_t v1 = (int32_t)((uint32_t)(x1 + a->in1_offset) << a->left_shift);
    const int32_t v2 = (int32_t)((uint32_t)(x2 + a->in2_offset) << a->left_shift);
    const int32_t sum = em_multiply_by_quantized_multiplier(v1, a->in1_mult, a->in1_shift) +
                        em_multiply_by_quantized_multiplier(v2, a->in2_mult, a->in2_shift);
    const int32_t v = em_multiply_by_quantized_multiplier(sum, a->out_mult, a->out_shift) + a->out_offset;
    return em_clamp_i8(v, a->act_min, a->act_max);
}

void em_sub(const void *args) {
    const em_binary_args *a = (const em_binary_args *)args;
    const int s1 = a->s1[4], s2 = a->s2[4], n = a->dims[4];
    EM_BINARY_ROWS(a, {
        for (int i = 0; i < n; i++) a->out[o + i] = sub_one(a, p1[(long)i * s1], p2[(long)i * s2]);
    });
}
