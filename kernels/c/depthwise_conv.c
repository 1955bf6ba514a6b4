/* DEPTHWISE_CONV_2D.  Channels are innermost so the compiler vectorizes the
 * multiply-accumulate; the same body is compiled once for the portable target
 * and once with AVX2 enabled (and that copy requantizes with AVX2 too). */
#include <string.h>
#include "requant.h"

#define DW_BODY(REQUANT_ROW)                                                                              \
    const int ocp = (a->out_c + 15) & ~15;                                                                \
    const int rows = a->batch * a->out_h;                                                                 \
    _Pragma("omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)")            \
    for (int r = 0; r < rows; r++) {                                                                      \
        int b = r / a->out_h, oy = r % a->out_h;                                                          \
        int tid = 0;                                                                                      \
        DW_TID(tid);                                                                                      \
        int32_t *restrict acc = a->scratch + (size_t)tid * ocp;                                           \
        for (int ox = 0; ox < a->out_w; ox++) {                                                           \
            memcpy(acc, a->bias, (size_t)a->out_c * sizeof(int32_t));                                     \
            for (int kh = 0; kh < a->k_h; kh++) {                                                         \
                int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;                                   \
                if (iy < 0 || iy >= a->in_h) continue;                                                    \
                for (int kw = 0; kw < a->k_w; kw++) {                                                     \
                    int ix = ox * a->stride_w - a->pad_left + kw * a->dil_w;                              \
                    if (ix < 0 || ix >= a->in_w) continue;                                                \
                    const int8_t *restrict px = a->in + (((size_t)b * a->in_h + iy) * a->in_w + ix) * a->in_c; \
                    const int16_t *restrict w = a->w + ((size_t)kh * a->k_w + kw) * a->out_c;             \
                    const int32_t off = a->in_offset;                                                     \
                    if (a->depth_mult == 1) {                                                             \
                        for (int c = 0; c < a->out_c; c++) acc[c] += (int32_t)(px[c] + off) * w[c];       \
                    } else {                                                                              \
                        const int dm = a->depth_mult;                                                     \
                        for (int c = 0; c < a->in_c; c++)                                                 \
                            for (int m = 0; m < dm; m++) acc[c * dm + m] += (int32_t)(px[c] + off) * w[c * dm + m]; \
                    }                                                                                     \
                }                                                                                         \
            }                                                                                             \
            REQUANT_ROW(acc, a->out_c, &a->rq, 0, a->out + (((size_t)b * a->out_h + oy) * a->out_w + ox) * a->out_c); \
        }                                                                                                 \
    }

#ifdef _OPENMP
#include <omp.h>
#define DW_TID(t) (t) = omp_get_thread_num()
#else
#define DW_TID(t) (void)(t)
#endif

static void dw_portable(const em_dwconv_args *a) { DW_BODY(em_requant_row_portable) }

#ifdef EM_HAVE_AVX2
static EM_AVX2 void dw_avx2_generic(const em_dwconv_args *a) { DW_BODY(em_requant_row_avx2) }

/* Depth multiplier 1: 16 channels at a time held in two registers over all
 * taps.  (x + offset) fits int16 ([-255, 255]) and so does its product with an
 * int8 weight (|.| <= 32640), so one mullo_epi16 per tap, then widen and add. */
static EM_AVX2 void dw_avx2_dm1(const em_dwconv_args *a) {
    const int C = a->out_c, C16 = C & ~15;
    const int ocp = (C + 15) & ~15;
    const int rows = a->batch * a->out_h;
    const __m256i off = _mm256_set1_epi16((short)a->in_offset);
#pragma omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)
    for (int r = 0; r < rows; r++) {
        int b = r / a->out_h, oy = r % a->out_h;
        int tid = 0;
        DW_TID(tid);
        int32_t *acc = a->scratch + (size_t)tid * ocp;
        int ky0 = 0, ky1 = a->k_h;
        while (ky0 < ky1 && oy * a->stride_h - a->pad_top + ky0 * a->dil_h < 0) ky0++;
        while (ky1 > ky0 && oy * a->stride_h - a->pad_top + (ky1 - 1) * a->dil_h >= a->in_h) ky1--;
        for (int ox = 0; ox < a->out_w; ox++) {
            int kx0 = 0, kx1 = a->k_w;
            while (kx0 < kx1 && ox * a->stride_w - a->pad_left + kx0 * a->dil_w < 0) kx0++;
            while (kx1 > kx0 && ox * a->stride_w - a->pad_left + (kx1 - 1) * a->dil_w >= a->in_w) kx1--;
            const int8_t *base = a->in + ((size_t)b * a->in_h * a->in_w) * C;
            int8_t *out = a->out + (((size_t)b * a->out_h + oy) * a->out_w + ox) * C;
            for (int c = 0; c < C16; c += 16) {
                __m256i acc0 = _mm256_loadu_si256((const __m256i *)(a->bias + c));
                __m256i acc1 = _mm256_loadu_si256((const __m256i *)(a->bias + c + 8));
                for (int kh = ky0; kh < ky1; kh++) {
                    int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
                    for (int kw = kx0; kw < kx1; kw++) {
                        int ix = ox * a->stride_w - a->pad_left + kw * a->dil_w;
                        __m128i xi = _mm_loadu_si128((const __m128i *)(base + ((size_t)iy * a->in_w + ix) * C + c));
                        __m256i x = _mm256_add_epi16(_mm256_cvtepi8_epi16(xi), off);
                        __m256i w = _mm256_loadu_si256((const __m256i *)(a->w + ((size_t)kh * a->k_w + kw) * C + c));
                        __m256i p = _mm256_mullo_epi16(x, w);
                        acc0 = _mm256_add_epi32(acc0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(p)));
                        acc1 = _mm256_add_epi32(acc1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(p, 1)));
                    }
                }
                em_requant16_avx2(acc0, acc1, &a->rq, c, 16, out + c);
            }
            if (C16 < C) {
                for (int c = C16; c < C; c++) acc[c - C16] = a->bias[c];
                for (int kh = ky0; kh < ky1; kh++) {
                    int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
                    for (int kw = kx0; kw < kx1; kw++) {
                        int ix = ox * a->stride_w - a->pad_left + kw * a->dil_w;
                        const int8_t *px = base + ((size_t)iy * a->in_w + ix) * C;
                        const int16_t *w = a->w + ((size_t)kh * a->k_w + kw) * C;
                        for (int c = C16; c < C; c++) acc[c - C16] += (int32_t)(px[c] + a->in_offset) * w[c];
                    }
                }
                em_requant_row_avx2(acc, C - C16, &a->rq, C16, out + C16);
            }
        }
    }
}
#endif

void em_depthwise_conv2d(const void *args) {
    const em_dwconv_args *a = (const em_dwconv_args *)args;
#ifdef EM_HAVE_NEON
    if (em_dwconv_neon(a)) return; /* depthwise_neon.c: depth multiplier 1 on the neon/dotprod paths */
#endif
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2) {
        if (a->depth_mult == 1) dw_avx2_dm1(a); else dw_avx2_generic(a);
        return;
    }
#endif
    dw_portable(a);
}
