/* MUL (int8): product of the offset inputs, requantized to the output. */
#include "binary.h"
#include "fixedpoint.h"

void em_mul(const void *args) {
    const em_binary_args *a = (const em_binary_args *)args;
    const int s1 = a->s1[4], s2 = a->s2[4];
    EM_BINARY_ROWS(a, {
        for (int i = 0; i < a->dims[4]; i++) {
            int32_t prod = (p1[(long)i * s1] + a->in1_offset) * (p2[(long)i * s2] + a->in2_offset);
            int32_t v = em_multiply_by_quantized_multiplier(prod, a->out_mult, a->out_shift) + a->out_offset;
            a->out[o + i] = em_clamp_i8(v, a->act_min, a->act_max);
        }
    });
}
