/* ADD (int8): both inputs scaled to a common 2^left_shift fixed-point scale,
 * summed, then requantized to the output, as TFLite's integer Add. */
#include "binary.h"
#include "fixedpoint.h"

void em_add(const void *args) {
    const em_binary_args *a = (const em_binary_args *)args;
    EM_BINARY_LOOP(a, {
        int32_t v1 = (int32_t)((uint32_t)(x1 + a->in1_offset) << a->left_shift);
        int32_t v2 = (int32_t)((uint32_t)(x2 + a->in2_offset) << a->left_shift);
        int32_t sum = em_multiply_by_quantized_multiplier(v1, a->in1_mult, a->in1_shift) +
                      em_multiply_by_quantized_multiplier(v2, a->in2_mult, a->in2_shift);
        int32_t v = em_multiply_by_quantized_multiplier(sum, a->out_mult, a->out_shift) + a->out_offset;
        a->out[o] = em_clamp_i8(v, a->act_min, a->act_max);
    });
}
