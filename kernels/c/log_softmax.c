/* LOG_SOFTMAX on int8 (output scale 16/256, zero point 127, as the interpreter requires) as its optimized kernel
 * (optimized_ops::LogSoftmax, the registered one): the SOFTMAX table exps (em_softmax_table, beta 1) relative to
 * the row maximum summed in order in float, logf of the sum, then per element
 *     rint(in_scale / out_scale * x - (in_scale * max + log_sum) / out_scale) + 127
 * in float32 (each operation rounded once: -ffp-contract=off), rint rounding half to even as the default float
 * environment, clamped to int8. */
#include <math.h>
#include "em_kernels.h"

/* rintf for the values LOG_SOFTMAX produces: adding and subtracting 1.5 * 2^23 rounds to an integer, ties to
 * even, exactly as rintf in the default rounding mode for |v| < 2^22 (no library call: x86-64's baseline has no
 * roundss); larger magnitudes go to rintf. */
static inline float rint_even(float v) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return fabsf(v) < 4194304.0f ? (v + magic) - magic : rintf(v);
}

void em_log_softmax(const void *args) {
    const em_log_softmax_args *a = (const em_log_softmax_args *)args;
    const int outer = a->outer, depth = a->depth;
    const float in_scale = a->in_scale, out_scale = a->out_scale, zp = (float)a->out_zp;
    const float *table = a->table;
    const int8_t *x = a->in;
    int8_t *y = a->out; /* locals: int8_t stores may alias anything, *a included */
    for (int i = 0; i < outer; i++, x += depth, y += depth) {
        int8_t max_val = -128;
        for (int j = 0; j < depth; j++) max_val = x[j] > max_val ? x[j] : max_val;
        const float *t = table + (255 - max_val);
        float sum_exp = 0.0f;
        for (int j = 0; j < depth; j++) sum_exp += t[x[j]];
        const float log_sum_exp = logf(sum_exp);
        const float scale = in_scale / out_scale;
        const float precomputed = (in_scale * (float)max_val + log_sum_exp) / out_scale;
        if (fabsf(scale) * 128.0f + fabsf(precomputed) < 4000000.0f) { /* every |log_prob| < 2^22: branch-free */
            const float magic = 12582912.0f;
            for (int j = 0; j < depth; j++) {
                const float q = ((scale * (float)x[j] - precomputed) + magic) - magic + zp;
                y[j] = (int8_t)(int32_t)(q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q));
            }
        } else {
            for (int j = 0; j < depth; j++) {
                const float q = rint_even(scale * (float)x[j] - precomputed) + zp;
                y[j] = (int8_t)(q < -128.0f ? -128 : (q > 127.0f ? 127 : (int32_t)q));
            }
        }
    }
}
