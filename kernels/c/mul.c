/* MUL (int8): product of the offset inputs, requantized to the output. */
#include "binary.h"
#include "fixedpoint.h"

void em_mul(const void *args) {
    const em_binary_args *a = (const em_binary_args *)args;
    EM_BINARY_LOOP(a, {
        int32_t prod = (x1 + a->in1_offset) * (x2 + a->in2_offset);
        int32_t v = em_multiply_by_quantized_multiplier(prod, a->out_mult, a->out_shift) + a->out_offset;
        a->out[o] = em_clamp_i8(v, a->act_min, a->act_max);
    });
}
