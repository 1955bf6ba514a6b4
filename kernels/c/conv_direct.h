/* CONV_2D without im2col: gemm_neon.c's conv_direct_neon (x86's AVX2 conv, conv.c's conv_rows_avx2, has padded
 * lines of its own and takes EM_DIRECT_MAX_KH from here).  Per output
 * row, the k_h input rows it reads are widened to int16 once (each pixel once per row instead of once per tap in
 * im2col), and the GEMM tile reads each tap's channel pairs straight from them (a shared zero pixel where the
 * window leaves the image).  The same products and exact int32 sums as im2col + GEMM, so the same bytes.  This
 * header holds the fit check and the row setup; each path keeps its own tile.  Internal to the kernels. */
#ifndef EDGE_MAAS_CONV_DIRECT_H
#define EDGE_MAAS_CONV_DIRECT_H
#include <string.h>
#include "conv_driver.h"

/* Most filter rows a direct conv keeps pointers for; taller filters take im2col. */
#define EM_DIRECT_MAX_KH 16

/* The direct path fits: an even channel count (a tap's channel pairs are whole GEMM k pairs, so the packed
 * weights serve unchanged: Kp == K), a real window (1x1 stride 1 is already a plain GEMM), and one zero pixel
 * plus the k_h input rows of an output row, widened, inside this thread's im2col scratch. */
static inline int em_direct_fits(const em_conv_args *a, int kp) {
    return a->in_c % 2 == 0 && kp == a->k_h * a->k_w * a->in_c && a->k_h * a->k_w > 1 &&
           a->k_h <= EM_DIRECT_MAX_KH && ((size_t)a->k_h * a->in_w + 1) * a->in_c <= (size_t)EM_CONV_ROWS * kp;
}

/* [lo, hi): the output columns whose every kw tap lies inside the image (no per-tap checks there). */
typedef struct {
    int lo, hi;
} em_direct_span;

static inline em_direct_span em_direct_interior(const em_conv_args *a) {
    em_direct_span s = {0, a->out_w};
    while (s.lo < a->out_w && s.lo * a->stride_w - a->pad_left < 0) s.lo++;
    while (s.hi > s.lo && (s.hi - 1) * a->stride_w - a->pad_left + (a->k_w - 1) * a->dil_w >= a->in_w) s.hi--;
    return s;
}

/* widens n input bytes x to int16 y = x + off */
typedef void (*em_direct_widen)(const int8_t *x, int16_t *y, size_t n, int32_t off);

/* Output row r (batch x out_h of them) on thread tid: the thread's scratch slice gets one zero pixel (in_c
 * int16, *zero), then line[kh] = the input row filter row kh reads, widened by `widen` (NULL where that row
 * leaves the image).  Returns whether every line is inside.  Always inlined, so `widen` is a direct (inlinable)
 * call on each path. */
static inline __attribute__((always_inline)) int em_direct_lines(const em_conv_args *a, int kp, int r, int tid,
                                                                 em_direct_widen widen, const int16_t **zero,
                                                                 const int16_t **line) {
    const int C = a->in_c, in_w = a->in_w;
    int16_t *buf = a->scratch + (size_t)tid * EM_CONV_ROWS * kp;
    memset(buf, 0, (size_t)C * sizeof(int16_t));
    *zero = buf;
    const int b = r / a->out_h, oy = r % a->out_h;
    int inside = 1;
    for (int kh = 0; kh < a->k_h; kh++) {
        const int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
        if (iy < 0 || iy >= a->in_h) {
            line[kh] = NULL;
            inside = 0;
            continue;
        }
        int16_t *dst = buf + C + (size_t)kh * in_w * C;
        widen(a->in + ((size_t)b * a->in_h + iy) * in_w * C, dst, (size_t)in_w * C, a->in_offset);
        line[kh] = dst;
    }
    return inside;
}

#endif
