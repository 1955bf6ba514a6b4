/* A unary int8 op as a 256-entry table: exact for any int8 -> int8 function,
 * which is how the interpreter itself runs LOGISTIC and friends. */
#include <math.h>
#include "em_kernels.h"

void em_lut(const void *args) {
    const em_lut_args *a = (const em_lut_args *)args;
    const size_t split = a->split < a->n ? a->split : a->n;
    for (size_t i = 0; i < split; i++) a->out[i] = a->table[(uint8_t)a->in[i]];
    for (size_t i = split; i < a->n; i++) a->out[i] = a->tail_table[(uint8_t)a->in[i]];
}

/* LOGISTIC's table as the interpreter populates it, in float with libm's expf:
 * dequantize, 1 / (1 + exp(-x)), multiply by 1/out_scale, round half away. */
void em_logistic_table(float in_scale, int32_t in_zp, float out_scale, int32_t out_zp, int8_t *table) {
    const float inverse_scale = 1 / out_scale;
    for (int32_t val = -128; val <= 127; val++) {
        const float dequantized = in_scale * (float)(val - in_zp);
        const float transformed = 1.0f / (1.0f + expf(-dequantized));
        const float rescaled = roundf(transformed * inverse_scale);
        int32_t q = (int32_t)(rescaled + (float)out_zp);
        table[(uint8_t)(int8_t)val] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
    }
}
