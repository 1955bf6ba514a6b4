/* PRELU on int8: alpha (int8, any quantization) broadcast over the input, as the interpreter's reference_ops::Prelu
 * / BroadcastPrelu4DSlow (tflite/kernels/internal/reference/prelu.h), which its int8 kernel runs (scalar, so one
 * rounding everywhere: MultiplyByQuantizedMultiplier, ties away from zero, no block / tail split):
 *     v = x - x_zp;  v >= 0: out = MBQM(v, m1, s1)           m1 ~ in_scale / out_scale
 *                    v < 0:  out = MBQM(v * (a - a_zp), m2, s2)  m2 ~ in_scale * alpha_scale / out_scale
 *     out = clamp(out + out_zp, -128, 127)
 * em_binary_args: in1 = input, in2 = alpha (strides 0 where broadcast), in1_mult/in1_shift = (m1, s1),
 * in2_mult/in2_shift = (m2, s2). */
#include "binary.h"
#include "fixedpoint.h"

void em_prelu(const void *args) {
    const em_binary_args *a = (const em_binary_args *)args;
    /* locals: int8_t stores may alias anything, *a included */
    const int s1 = a->s1[4], s2 = a->s2[4], n = a->dims[4];
    const int32_t in_off = a->in1_offset, al_off = a->in2_offset, out_off = a->out_offset;
    const int32_t m1 = a->in1_mult, sh1 = a->in1_shift, m2 = a->in2_mult, sh2 = a->in2_shift;
    int8_t *out = a->out;
    EM_BINARY_ROWS(a, {
        for (int i = 0; i < n; i++) {
            const int32_t v = p1[(long)i * s1] + in_off;
            const int32_t r = v >= 0 ? em_multiply_by_quantized_multiplier(v, m1, sh1)
                                     : em_multiply_by_quantized_multiplier(v * (p2[(long)i * s2] + al_off), m2, sh2);
            out[o + i] = em_clamp_i8(r + out_off, -128, 127);
        }
    });
}
