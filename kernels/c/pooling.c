/* AVERAGE_POOL_2D and MAX_POOL_2D (int8, same scale in and out).  The window
 * is clipped to the image; the average divides by the clipped count, rounding
 * half away from zero, as TFLite does. */
#include "em_kernels.h"

#define POOL_LOOP(INIT, ACCUM, FINISH)                                                          \
    for (int b = 0; b < a->batch; b++)                                                          \
        for (int oy = 0; oy < a->out_h; oy++)                                                   \
            for (int ox = 0; ox < a->out_w; ox++) {                                             \
                int y0 = oy * a->stride_h - a->pad_top, x0 = ox * a->stride_w - a->pad_left;    \
                int fy0 = y0 < 0 ? -y0 : 0, fx0 = x0 < 0 ? -x0 : 0;                             \
                int fy1 = a->in_h - y0 < a->k_h ? a->in_h - y0 : a->k_h;                        \
                int fx1 = a->in_w - x0 < a->k_w ? a->in_w - x0 : a->k_w;                        \
                int8_t *out = a->out + (((size_t)b * a->out_h + oy) * a->out_w + ox) * a->channels; \
                for (int c = 0; c < a->channels; c++) {                                         \
                    INIT;                                                                       \
                    for (int fy = fy0; fy < fy1; fy++)                                          \
                        for (int fx = fx0; fx < fx1; fx++) {                                    \
                            int32_t v = a->in[(((size_t)b * a->in_h + y0 + fy) * a->in_w + x0 + fx) * a->channels + c]; \
                            ACCUM;                                                              \
                        }                                                                       \
                    FINISH;                                                                     \
                }                                                                               \
            }

static inline int8_t clamp(int32_t v, const em_pool_args *a) {
    return (int8_t)(v < a->act_min ? a->act_min : (v > a->act_max ? a->act_max : v));
}

void em_average_pool(const void *args) {
    const em_pool_args *a = (const em_pool_args *)args;
    POOL_LOOP(int32_t acc = 0; int count = (fy1 - fy0) * (fx1 - fx0),
              acc += v,
              int32_t avg = count == 0 ? 0 : (acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count);
              out[c] = clamp(avg, a))
}

void em_max_pool(const void *args) {
    const em_pool_args *a = (const em_pool_args *)args;
    POOL_LOOP(int32_t m = -128,
              m = v > m ? v : m,
              out[c] = clamp(m, a))
}
