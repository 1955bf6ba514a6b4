/* MUL (int8): product of the offset inputs, requantized to the output.
 *
 * The interpreter's vectorized loop handles each run of 16 elements in int16
 * after the multiply: the result saturates to int16 and the zero point is
 * added with int16 wrap-around before the clamp.  Only outputs far outside
 * int8 see the difference, but we follow it; the n % 16 tail is plain int32. */
#include "binary.h"
#include "fixedpoint.h"

static inline int8_t clamp8(int32_t v, const em_binary_args *a) {
    return em_clamp_i8(v, a->act_min, a->act_max);
}

void em_mul(const void *args) {
    const em_binary_args *a = (const em_binary_args *)args;
    const int s1 = a->s1[4], s2 = a->s2[4], n = a->dims[4], blocked = n - n % 16;
    EM_BINARY_ROWS(a, {
        for (int i = 0; i < n; i++) {
            int32_t prod = (p1[(long)i * s1] + a->in1_offset) * (p2[(long)i * s2] + a->in2_offset);
            int32_t v = em_multiply_by_quantized_multiplier(prod, a->out_mult, a->out_shift);
            if (i < blocked) {
                int16_t h = (int16_t)(v < -32768 ? -32768 : (v > 32767 ? 32767 : v));
                a->out[o + i] = clamp8((int16_t)(uint16_t)((uint16_t)h + (uint16_t)a->out_offset), a);
            } else {
                a->out[o + i] = clamp8(v + a->out_offset, a);
            }
        }
    });
}
