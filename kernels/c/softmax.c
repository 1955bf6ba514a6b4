/* SOFTMAX (int8 in, int8 out) as the interpreter's table kernel: float exps
 * from a 256-entry table relative to the row maximum, summed in order, scaled
 * by 1 / (sum * out_scale), rounded half away from zero.  Float order and
 * operations follow that kernel exactly (built with -ffp-contract=off). */
#include <math.h>
#include "em_kernels.h"

void em_softmax_table(float in_scale, float beta, float *table) {
    const float scale = -in_scale * beta;
    for (int32_t val = 0; val <= 255; val++) table[255 - val] = expf(scale * (float)val);
}

void em_softmax(const void *args) {
    const em_softmax_args *a = (const em_softmax_args *)args;
    const int8_t *x = a->in;
    int8_t *y = a->out;
    for (int i = 0; i < a->outer; i++, x += a->depth, y += a->depth) {
        int32_t max_val = -128;
        for (int j = 0; j < a->depth; j++) max_val = x[j] > max_val ? x[j] : max_val;
        const float *t = a->table + (255 - max_val); /* t[x] = exp(-s * (max - x)), x may be negative */
        float sum = 0.0f;
        for (int j = 0; j < a->depth; j++) sum += t[x[j]];
        const float inv = 1.0f / (sum * a->out_scale);
        for (int j = 0; j < a->depth; j++) {
            int32_t q = (int32_t)roundf(t[x[j]] * inv) + a->out_zp;
            y[j] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
        }
    }
}
