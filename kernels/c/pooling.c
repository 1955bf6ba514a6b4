/* AVERAGE_POOL_2D and MAX_POOL_2D (int8, same scale in and out).  The window
 * is clipped to the image; the average divides by the clipped count, rounding
 * half away from zero, as TFLite does.  Channels are innermost (in chunks of
 * 64) so the compiler vectorizes the accumulation. */
#include "em_kernels.h"

#define CHUNK 64

/* BODY runs per output pixel and channel chunk with: px_at(fy, fx) giving the
 * input pixel pointer, fy0..fy1 / fx0..fx1 the clipped window, out, c0, nc. */
#define POOL_PIXELS(BODY)                                                                       \
    for (int b = 0; b < a->batch; b++)                                                          \
        for (int oy = 0; oy < a->out_h; oy++)                                                   \
            for (int ox = 0; ox < a->out_w; ox++) {                                             \
                const int y0 = oy * a->stride_h - a->pad_top, x0 = ox * a->stride_w - a->pad_left; \
                const int fy0 = y0 < 0 ? -y0 : 0, fx0 = x0 < 0 ? -x0 : 0;                       \
                const int fy1 = a->in_h - y0 < a->k_h ? a->in_h - y0 : a->k_h;                  \
                const int fx1 = a->in_w - x0 < a->k_w ? a->in_w - x0 : a->k_w;                  \
                const int8_t *base = a->in + (((size_t)b * a->in_h + y0) * a->in_w + x0) * a->channels; \
                int8_t *out = a->out + (((size_t)b * a->out_h + oy) * a->out_w + ox) * a->channels; \
                for (int c0 = 0; c0 < a->channels; c0 += CHUNK) {                               \
                    const int nc = a->channels - c0 < CHUNK ? a->channels - c0 : CHUNK;        \
                    BODY                                                                        \
                }                                                                               \
            }

#define PX(fy, fx) (base + ((long)(fy) * a->in_w + (fx)) * a->channels + c0)

static inline int8_t clamp(int32_t v, const em_pool_args *a) {
    return (int8_t)(v < a->act_min ? a->act_min : (v > a->act_max ? a->act_max : v));
}

void em_average_pool(const void *args) {
    const em_pool_args *a = (const em_pool_args *)args;
    int32_t acc[CHUNK];
    POOL_PIXELS({
        const int count = (fy1 - fy0) * (fx1 - fx0);
        for (int c = 0; c < nc; c++) acc[c] = 0;
        for (int fy = fy0; fy < fy1; fy++)
            for (int fx = fx0; fx < fx1; fx++) {
                const int8_t *px = PX(fy, fx);
                for (int c = 0; c < nc; c++) acc[c] += px[c];
            }
        for (int c = 0; c < nc; c++) {
            int32_t s = acc[c];
            int32_t avg = count == 0 ? 0 : (s > 0 ? (s + count / 2) / count : (s - count / 2) / count);
            out[c0 + c] = clamp(avg, a);
        }
    })
}

void em_max_pool(const void *args) {
    const em_pool_args *a = (const em_pool_args *)args;
    int8_t m[CHUNK];
    POOL_PIXELS({
        for (int c = 0; c < nc; c++) m[c] = -128;
        for (int fy = fy0; fy < fy1; fy++)
            for (int fx = fx0; fx < fx1; fx++) {
                const int8_t *px = PX(fy, fx);
                for (int c = 0; c < nc; c++) m[c] = px[c] > m[c] ? px[c] : m[c];
            }
        for (int c = 0; c < nc; c++) out[c0 + c] = clamp(m[c], a);
    })
}
