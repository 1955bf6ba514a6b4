/* LOG_SOFTMAX on int8 (output scale 16/256, zero point 127, as the interpreter requires) as its optimized kernel
 * (optimized_ops::LogSoftmax, the registered one): the SOFTMAX table exps (em_softmax_table, beta 1) relative to
 * the row maximum summed in order in float, logf of the sum, then per element
 *     rint(in_scale / out_scale * x - (in_scale * max + log_sum) / out_scale) + 127
 * in float32 (each operation rounded once: -ffp-contract=off), rint rounding half to even as the default float
 * environment, clamped to int8. */
#include <math.h>
#include "em_kernels.h"

void em_log_softmax(const void *args) {
    const em_log_softmax_args *a = (const em_log_softmax_args *)args;
    const int8_t *x = a->in;
    int8_t *y = a->out;
    for (int i = 0; i < a->outer; i++, x += a->depth, y += a->depth) {
        int8_t max_val = -128;
        for (int j = 0; j < a->depth; j++) max_val = x[j] > max_val ? x[j] : max_val;
        const float *t = a->table + (255 - max_val);
        float sum_exp = 0.0f;
        for (int j = 0; j < a->depth; j++) sum_exp += t[x[j]];
        const float log_sum_exp = logf(sum_exp);
        const float scale = a->in_scale / a->out_scale;
        const float precomputed = (a->in_scale * (float)max_val + log_sum_exp) / a->out_scale;
        for (int j = 0; j < a->depth; j++) {
            const float log_prob = scale * (float)x[j] - precomputed;
            const int32_t q = (int32_t)(rintf(log_prob) + (float)a->out_zp);
            y[j] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
        }
    }
}
