/* DEPTHWISE_CONV_2D.  AVX2: depth multiplier 1 with 16 or more channels keeps
 * 16 channels in registers over all taps (dw_avx2_dm1); every other case works
 * in groups of 8 output channels, lane j reading input channel (c0 + j) / dm,
 * several output pixels per weight load (dw_avx2_groups).  Portable: channels
 * innermost so the compiler vectorizes the multiply-accumulate (dw_portable),
 * and groups of 8 where one input channel feeds a whole group (dm % 8 == 0,
 * dw_portable_groups).  Sums are exact int32, so every path gives the same
 * bytes whatever its order. */
#include <string.h>
#include "requant.h"
#include "depthwise_x86.h"
#include "requant_portable.h"

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

/* First and one-past-last filter tap along an axis that stay inside the image for output position o. */
static inline void tap_range(int o, int stride, int pad, int dil, int k, int in, int *k0, int *k1) {
    int lo = 0, hi = k;
    while (lo < hi && o * stride - pad + lo * dil < 0) lo++;
    while (hi > lo && o * stride - pad + (hi - 1) * dil >= in) hi--;
    *k0 = lo;
    *k1 = hi;
}

/* Depth multiplier 1, portable: blocks of DW_PB output pixels x DW_CB channels of int32 sums on the stack, the
 * channel loop innermost on int16 operands (x + offset fits: |x + offset| <= 255), the shape gcc vectorizes as
 * widening int16 multiplies with SSE2 alone; then each channel's output stage runs over the block's pixels with
 * its multiplier and shifts fixed (em_requant_column_portable: vectorized, where the per-pixel row of channels
 * with their own shifts is not). */
#define DW_PB 16
#define DW_CB 64
static void dw_portable_dm1(const em_dwconv_args *a) {
    const int C = a->out_c, rows = a->batch * a->out_h;
    const int16_t off = (int16_t)a->in_offset;
#pragma omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)
    for (int r = 0; r < rows; r++) {
        const int b = r / a->out_h, oy = r % a->out_h;
        int ky0, ky1;
        tap_range(oy, a->stride_h, a->pad_top, a->dil_h, a->k_h, a->in_h, &ky0, &ky1);
        const int8_t *img = a->in + (size_t)b * a->in_h * a->in_w * C;
        int8_t *orow = a->out + ((size_t)b * a->out_h + oy) * a->out_w * C;
        int32_t acc[DW_PB][DW_CB], col[DW_PB];
        for (int ox0 = 0; ox0 < a->out_w; ox0 += DW_PB) {
            const int np = a->out_w - ox0 < DW_PB ? a->out_w - ox0 : DW_PB;
            for (int c0 = 0; c0 < C; c0 += DW_CB) {
                const int nc = C - c0 < DW_CB ? C - c0 : DW_CB;
                for (int p = 0; p < np; p++) {
                    const int ox = ox0 + p;
                    int kx0, kx1;
                    tap_range(ox, a->stride_w, a->pad_left, a->dil_w, a->k_w, a->in_w, &kx0, &kx1);
                    int32_t *restrict ap = acc[p];
                    for (int c = 0; c < nc; c++) ap[c] = a->bias[c0 + c];
                    for (int kh = ky0; kh < ky1; kh++) {
                        const int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
                        for (int kw = kx0; kw < kx1; kw++) {
                            const int ix = ox * a->stride_w - a->pad_left + kw * a->dil_w;
                            const int8_t *restrict px = img + ((size_t)iy * a->in_w + ix) * C + c0;
                            const int16_t *restrict w = a->w + ((size_t)kh * a->k_w + kw) * C + c0;
                            for (int c = 0; c < nc; c++) ap[c] += (int32_t)(int16_t)(px[c] + off) * w[c];
                        }
                    }
                }
                for (int c = 0; c < nc; c++) {
                    for (int p = 0; p < np; p++) col[p] = acc[p][c];
                    em_requant_column_portable(col, np, &a->rq, c0 + c, orow + (size_t)ox0 * C + c0 + c, C);
                }
            }
        }
    }
}

/* Groups of 8 output channels c0.., portable, lane j reading input channel
 * src[j] = (c0 + j) / dm; fixed 8-lane loops that the compiler vectorizes
 * (int16 x int16 -> int32 multiplies).  Correct for any multiplier; chosen
 * where dm % 8 == 0, when every group takes the one-channel branch. */
static void dw_portable_groups(const em_dwconv_args *a) {
    const int C = a->out_c, dm = a->depth_mult, G = (C + 7) / 8;
    const int rows = a->batch * a->out_h;
    const int32_t off = a->in_offset;
#pragma omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)
    for (int r = 0; r < rows; r++) {
        const int b = r / a->out_h, oy = r % a->out_h;
        int ky0, ky1;
        tap_range(oy, a->stride_h, a->pad_top, a->dil_h, a->k_h, a->in_h, &ky0, &ky1);
        const int8_t *img = a->in + (size_t)b * a->in_h * a->in_w * a->in_c;
        int8_t *orow = a->out + ((size_t)b * a->out_h + oy) * a->out_w * C;
        for (int g = 0; g < G; g++) {
            const int c0 = g * 8, n = C - c0 < 8 ? C - c0 : 8;
            int src[8];
            for (int j = 0; j < 8; j++) src[j] = (c0 + (j < n ? j : n - 1)) / dm;
            const int one_src = src[0] == src[n - 1];
            /* the sums of DW_PB pixels, then each channel's output stage over them (em_requant_column_portable) */
            int32_t blk[DW_PB][8], col[DW_PB];
            for (int ox = 0; ox < a->out_w; ox++) {
                int kx0, kx1;
                tap_range(ox, a->stride_w, a->pad_left, a->dil_w, a->k_w, a->in_w, &kx0, &kx1);
                int32_t acc[8];
                for (int j = 0; j < 8; j++) acc[j] = a->bias[c0 + j]; /* bias is padded to 16 */
                for (int kh = ky0; kh < ky1; kh++) {
                    const int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
                    for (int kw = kx0; kw < kx1; kw++) {
                        const int ix = ox * a->stride_w - a->pad_left + kw * a->dil_w;
                        const int8_t *px = img + ((size_t)iy * a->in_w + ix) * a->in_c;
                        const int16_t *w = a->w + ((size_t)kh * a->k_w + kw) * C + c0;
                        if (n == 8 && one_src) {
                            const int32_t x = px[src[0]] + off;
                            for (int j = 0; j < 8; j++) acc[j] += x * w[j];
                        } else if (n == 8) {
                            int16_t xv[8];
                            for (int j = 0; j < 8; j++) xv[j] = (int16_t)(px[src[j]] + off);
                            for (int j = 0; j < 8; j++) acc[j] += (int32_t)xv[j] * w[j];
                        } else {
                            for (int j = 0; j < n; j++) acc[j] += (int32_t)(px[src[j]] + off) * w[j];
                        }
                    }
                }
                memcpy(blk[ox % DW_PB], acc, sizeof acc);
                if (ox % DW_PB == DW_PB - 1 || ox == a->out_w - 1) {
                    const int ox0 = ox - ox % DW_PB, np = ox % DW_PB + 1;
                    for (int j = 0; j < n; j++) {
                        for (int p = 0; p < np; p++) col[p] = blk[p][j];
                        em_requant_column_portable(col, np, &a->rq, c0 + j, orow + (size_t)ox0 * C + c0 + j, C);
                    }
                }
            }
        }
    }
}

#ifdef EM_HAVE_AVX2
/* Lane j of the group at c0 = 8g: input channel base + idx[j] with
 * base = c0 / dm, idx[j] = (c0 % dm + j) / dm. */
static inline EM_AVX2 __m256i group_idx(int c0, int dm) {
    const int rem = c0 % dm;
    if (dm >= 8) /* lanes read base or base + 1 */
        return _mm256_srli_epi32(_mm256_cmpgt_epi32(_mm256_add_epi32(_mm256_set1_epi32(rem),
                                 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), _mm256_set1_epi32(dm - 1)), 31);
    int t[8];
    for (int j = 0; j < 8; j++) t[j] = (rem + j) / dm;
    return _mm256_loadu_si256((const __m256i *)t);
}

/* The 8 lanes (x + offset) of one input pixel for a group: a broadcast when one input channel feeds all 8
 * lanes, else 8 bytes from channel base (fewer copied at the very end of the tensor) permuted by idx. */
static inline EM_AVX2 __m256i group_x(const int8_t *px, const int8_t *in, size_t in_total, int base, int bcast,
                                      __m256i idx, __m256i off, int32_t off1) {
    if (bcast) return _mm256_set1_epi32(px[base] + off1);
    const int8_t *p = px + base;
    __m128i v;
    if ((size_t)(p - in) + 8 <= in_total) {
        v = _mm_loadl_epi64((const __m128i *)p);
    } else {
        int8_t t[8] = {0};
        for (size_t i = 0; i < in_total - (size_t)(p - in); i++) t[i] = p[i];
        v = _mm_loadl_epi64((const __m128i *)t);
    }
    return _mm256_add_epi32(_mm256_permutevar8x32_epi32(_mm256_cvtepi8_epi32(v), idx), off);
}

/* Two pixels' accumulators of one group -> int8, n <= 8 channels each; o1 NULL: only the first. */
static inline EM_AVX2 void requant_pair8(__m256i a0, __m256i a1, __m256i mult, __m256i shift, const em_requant *rq,
                                         int c0, int n, int8_t *o0, int8_t *o1) {
    __m256i r0 = em_mbqm_avx2(a0, mult, shift, c0, rq->round_up_below);
    __m256i r1 = o1 ? em_mbqm_avx2(a1, mult, shift, c0, rq->round_up_below) : r0;
    __m256i s = _mm256_permute4x64_epi64(_mm256_packs_epi32(r0, r1), 0xD8);
    s = _mm256_adds_epi16(s, _mm256_set1_epi16((short)rq->zp));
    s = _mm256_max_epi16(s, _mm256_set1_epi16((short)rq->act_min));
    s = _mm256_min_epi16(s, _mm256_set1_epi16((short)rq->act_max));
    __m128i bytes = _mm_packs_epi16(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    if (n == 8) {
        _mm_storel_epi64((__m128i *)o0, bytes);
        if (o1) _mm_storel_epi64((__m128i *)o1, _mm_srli_si128(bytes, 8));
    } else {
        int8_t t[16];
        _mm_storeu_si128((__m128i *)t, bytes);
        for (int i = 0; i < n; i++) o0[i] = t[i];
        if (o1)
            for (int i = 0; i < n; i++) o1[i] = t[8 + i];
    }
}

/* Taps a group keeps its widened weights for on the stack; larger filters take the portable path. */
#define DW_MAX_TAPS 256

/* Output pixels ox (and ox + 1 when two) of a group, any of whose taps may leave the image or read the
 * tensor's last bytes: every tap checked. */
static inline EM_AVX2 void dw_pair_checked(const em_dwconv_args *a, const int8_t *img, int oy, int ky0, int ky1, int ox,
                                           int two, const __m256i *wv, __m256i bias, __m256i idx, int base,
                                           int bcast, __m256i mult, __m256i shift, int c0, int n, int8_t *orow) {
    const size_t in_total = (size_t)a->batch * a->in_h * a->in_w * a->in_c;
    const __m256i off = _mm256_set1_epi32(a->in_offset);
    __m256i acc0 = bias, acc1 = bias;
    for (int kh = ky0; kh < ky1; kh++) {
        const int8_t *line = img + (size_t)(oy * a->stride_h - a->pad_top + kh * a->dil_h) * a->in_w * a->in_c;
        for (int kw = 0; kw < a->k_w; kw++) {
            const int ix0 = ox * a->stride_w - a->pad_left + kw * a->dil_w, ix1 = ix0 + a->stride_w;
            const __m256i w = wv[kh * a->k_w + kw];
            if (ix0 >= 0 && ix0 < a->in_w)
                acc0 = _mm256_add_epi32(acc0, _mm256_mullo_epi32(group_x(line + (size_t)ix0 * a->in_c, a->in, in_total,
                                                                         base, bcast, idx, off, a->in_offset), w));
            if (two && ix1 >= 0 && ix1 < a->in_w)
                acc1 = _mm256_add_epi32(acc1, _mm256_mullo_epi32(group_x(line + (size_t)ix1 * a->in_c, a->in, in_total,
                                                                         base, bcast, idx, off, a->in_offset), w));
        }
    }
    int8_t *o0 = orow + (size_t)ox * a->out_c + c0;
    requant_pair8(acc0, acc1, mult, shift, &a->rq, c0, n, o0, two ? o0 + a->out_c : NULL);
}

/* 4 output pixels whose taps all lie inside the image and whose loads are safe: 4 accumulators, one weight
 * register per tap, no checks.  GX(q) gives the 8 lanes (x + offset) of the input pixel at q. */
#define DW_QUADS(GX)                                                                                          \
    for (; ox + 4 <= ox_hi; ox += 4) {                                                                        \
        __m256i a0 = bias, a1 = bias, a2 = bias, a3 = bias;                                                   \
        for (int kh = ky0; kh < ky1; kh++) {                                                                  \
            const int8_t *p = img + ((size_t)(oy * a->stride_h - a->pad_top + kh * a->dil_h) * a->in_w +      \
                                     (size_t)(ox * sw - a->pad_left)) * in_c;                                 \
            const __m256i *wk = wv + kh * a->k_w;                                                             \
            for (int kw = 0; kw < a->k_w; kw++) {                                                             \
                const int8_t *q = p + (size_t)kw * a->dil_w * in_c;                                           \
                const __m256i w = wk[kw];                                                                     \
                a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(GX(q), w));                                      \
                a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(GX(q + step), w));                               \
                a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(GX(q + 2 * step), w));                           \
                a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(GX(q + 3 * step), w));                           \
            }                                                                                                 \
        }                                                                                                     \
        int8_t *o = orow + (size_t)ox * C + c0;                                                               \
        requant_pair8(a0, a1, mult, shift, &a->rq, c0, n, o, o + C);                                          \
        requant_pair8(a2, a3, mult, shift, &a->rq, c0, n, o + 2 * (size_t)C, o + 3 * (size_t)C);              \
    }
#define DW_GX_BCAST(q) _mm256_set1_epi32((q)[base] + off1)
#define DW_GX_PERM(q)                                                                                         \
    _mm256_add_epi32(                                                                                         \
        _mm256_permutevar8x32_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((q) + base))), idx), off)

/* Any depth multiplier, AVX2, per output row and group of 8 output channels: the group's weights widened to
 * int32 once, then the pixels whose taps all lie inside the image 4 at a time (DW_QUADS), the rest in pairs
 * with every tap checked; one vpmulld per pixel per tap. */
static EM_AVX2 void dw_avx2_groups(const em_dwconv_args *a) {
    const int C = a->out_c, dm = a->depth_mult, G = (C + 7) / 8;
    const int rows = a->batch * a->out_h;
    const size_t in_total = (size_t)a->batch * a->in_h * a->in_w * a->in_c;
    const size_t w_total = (size_t)a->k_h * a->k_w * C;
    const __m256i off = _mm256_set1_epi32(a->in_offset);
    const int32_t off1 = a->in_offset;
    const int sw = a->stride_w, in_c = a->in_c;
    const size_t step = (size_t)sw * in_c; /* input bytes from one output pixel to the next */
    int ox_lo = 0, ox_hi = a->out_w;      /* [ox_lo, ox_hi): every kw tap inside the image */
    while (ox_lo < a->out_w && ox_lo * sw - a->pad_left < 0) ox_lo++;
    while (ox_hi > ox_lo && (ox_hi - 1) * sw - a->pad_left + (a->k_w - 1) * a->dil_w >= a->in_w) ox_hi--;
#pragma omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)
    for (int r = 0; r < rows; r++) {
        const int b = r / a->out_h, oy = r % a->out_h;
        int ky0, ky1;
        tap_range(oy, a->stride_h, a->pad_top, a->dil_h, a->k_h, a->in_h, &ky0, &ky1);
        const int8_t *img = a->in + (size_t)b * a->in_h * a->in_w * in_c;
        int8_t *orow = a->out + ((size_t)b * a->out_h + oy) * a->out_w * C;
        __m256i wv[DW_MAX_TAPS];
        for (int g = 0; g < G; g++) {
            const int c0 = g * 8, n = C - c0 < 8 ? C - c0 : 8;
            const int base = c0 / dm, bcast = (c0 % dm) + n <= dm; /* all n lanes read channel base */
            const __m256i idx = group_idx(c0, dm);
            const __m256i mult = _mm256_loadu_si256((const __m256i *)(a->rq.mult + c0)); /* padded to 16 */
            const __m256i shift = _mm256_loadu_si256((const __m256i *)(a->rq.shift + c0));
            const __m256i bias = _mm256_loadu_si256((const __m256i *)(a->bias + c0));
            for (int t = 0; t < a->k_h * a->k_w; t++) {
                const size_t wo = (size_t)t * C + c0;
                if (wo + 8 <= w_total) {
                    wv[t] = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(a->w + wo)));
                } else { /* the last tap of a partial group: its 8 int16 would run past the weights */
                    int16_t tw[8] = {0};
                    for (int j = 0; j < n; j++) tw[j] = a->w[wo + j];
                    wv[t] = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)tw));
                }
            }
            /* 8 bytes from channel base of the row's last pixel lie inside the tensor: no load needs a check */
            const int iy_last = oy * a->stride_h - a->pad_top + (ky1 - 1) * a->dil_h;
            const int safe = bcast || ky1 <= ky0 ||
                             (((size_t)b * a->in_h + iy_last) * a->in_w + a->in_w - 1) * in_c + base + 8 <= in_total;
            int ox = 0;
            for (; ox < ox_lo; ox += 2)
                dw_pair_checked(a, img, oy, ky0, ky1, ox, ox + 1 < ox_lo, wv, bias, idx, base, bcast, mult, shift, c0,
                                n, orow);
            ox = ox_lo;
            if (safe && bcast) {
                DW_QUADS(DW_GX_BCAST)
            } else if (safe) {
                DW_QUADS(DW_GX_PERM)
            }
            for (; ox < a->out_w; ox += 2)
                dw_pair_checked(a, img, oy, ky0, ky1, ox, ox + 1 < a->out_w, wv, bias, idx, base, bcast, mult, shift,
                                c0, n, orow);
        }
    }
}

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

/* ---- the x86 flat-row paths (depthwise_x86.h) ---- */
#ifdef EM_HAVE_AVX2

#define DW_MAX_SLOTS 32 /* row buffers per thread: the rows one output row reads, (k_h - 1) * dil_h + 1 */

typedef struct {
    int P, PL, Q, Wj, Ls, NS, G, P64, Y, irlen;
    size_t hdr, wsp, i32, i64, yi32, yi64, iw, slot, islot, zp, total;
} dw_layout;

static size_t al64(size_t n) { return (n + 63) & ~(size_t)63; }

static int dw_gcd(int a, int b) {
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Sizes of the plan's parts; 0 where the flat paths do not apply (too many taps, rows or bytes, a right shift
 * past 31). */
static int dw_layout_of(const em_dwconv_args *a, dw_layout *L) {
    const int C = a->out_c, taps = a->k_h * a->k_w;
    if (C < 1 || taps < 1 || taps > 256 || a->stride_w < 1 || a->out_w < 1) return 0;
    for (int c = 0; c < C; c++)
        if (a->rq.shift[c] < -31 || a->rq.shift[c] > 31) return 0;
    L->P = C / dw_gcd(C, 8) * 8;
    L->PL = L->P + 64;
    L->Q = L->P / 4 + 16;
    L->P64 = C / dw_gcd(C, 64) * 64;
    L->Y = L->P64 / 4 + 16;
    L->G = (a->k_w + 3) / 4;
    const size_t len = (size_t)a->out_w * C;
    L->irlen = (int)(4 * al64(len));
    L->Wj = a->out_w + (a->k_w - 1) * a->dil_w / a->stride_w;
    L->Ls = (int)al64((size_t)L->Wj * C + 64);
    L->NS = (a->k_h - 1) * a->dil_h + 1;
    if (L->NS > DW_MAX_SLOTS || len > ((size_t)1 << 28)) return 0;
    L->slot = (size_t)a->stride_w * L->Ls;
    L->islot = (size_t)L->G * L->irlen;
    L->zp = L->slot > L->islot ? L->slot : L->islot;
    L->hdr = al64(sizeof(em_dw_plan));
    L->wsp = al64((size_t)taps * 2 * L->PL);
    L->i32 = al64((size_t)4 * L->Q * sizeof(int32_t));
    L->i64 = al64((size_t)4 * (L->Q / 2) * sizeof(int64_t));
    L->yi32 = al64((size_t)4 * L->Y * sizeof(int32_t));
    L->yi64 = al64((size_t)4 * (L->Y / 2) * sizeof(int64_t));
    L->iw = al64((size_t)a->k_h * L->G * 4 * L->Y * sizeof(int32_t));
    const size_t threads = a->threads > 1 ? (size_t)a->threads : 1;
    L->total = 64 + L->hdr + L->wsp + 4 * L->i32 + 10 * L->i64 + L->iw + 4 * L->yi32 + 10 * L->yi64 + L->zp +
               threads * L->NS * (L->slot + L->islot);
    return L->total <= ((size_t)64 << 20);
}

size_t em_dwconv_plan_len(const em_dwconv_args *a) {
    dw_layout L;
    return dw_layout_of(a, &L) ? L.total : 0;
}

/* Channel of lane l of stream / register k: spread (4l + k), interleaved (4l - 3 (l % 4) + 4k), mod C. */
static int dw_lane_channel(int interleaved, int l, int k, int C) {
    return (interleaved ? 4 * l - 3 * (l % 4) + 4 * k : 4 * l + k) % C;
}

/* The requantization constants (and bias') of one layout, from *q on (advanced). */
static void dw_fill_consts(const em_dwconv_args *a, const em_dw_plan *p, em_dw_consts *cs, uint8_t **q, int Q,
                           int interleaved, size_t i32, size_t i64) {
    const int C = a->out_c, taps = a->k_h * a->k_w, Q2 = Q / 2;
    int32_t *bias = (int32_t *)*q, *left = (int32_t *)(*q + i32), *d32 = (int32_t *)(*q + 2 * i32),
            *hs = (int32_t *)(*q + 3 * i32);
    *q += 4 * i32;
    int64_t *v64[10];
    for (int i = 0; i < 10; i++, *q += i64) v64[i] = (int64_t *)*q;
    int64_t *me = v64[0], *mo = v64[1], *ke = v64[2], *ko = v64[3], *ke2 = v64[4], *ko2 = v64[5], *se = v64[6],
            *so = v64[7], *awe = v64[8], *awo = v64[9];
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < Q; l++) {
            const int c = dw_lane_channel(interleaved, l, k, C);
            uint32_t sum = 0; /* int32 sums wrap, as the interpreter's accumulators */
            for (int t = 0; t < taps; t++) sum += (uint32_t)(int32_t)a->w[(size_t)t * C + c];
            bias[k * Q + l] = (int32_t)((uint32_t)a->bias[c] + (uint32_t)(a->in_offset - 128) * sum);
            const int sh = a->rq.shift[c], r = sh > 0 ? 0 : -sh, s = 31 + r;
            const int away = c >= a->rq.round_up_below && r >= 1;
            left[k * Q + l] = sh > 0 ? sh : 0;
            d32[k * Q + l] = s == 31 ? 0 : (int32_t)((uint32_t)1 << (63 - s));
            hs[k * Q + l] = s - 32;
            const int64_t K = (1LL << 30) + (r >= 1 ? (int64_t)1 << (30 + r) : 0);
            const int64_t K2 = (int64_t)((uint64_t)K + (1ULL << 63));
            const size_t j = (size_t)k * Q2 + l / 2;
            if (l % 2 == 0) {
                me[j] = a->rq.mult[c], ke[j] = K, ke2[j] = K2, se[j] = s, awe[j] = away ? 1LL << 31 : 0;
            } else {
                mo[j] = a->rq.mult[c], ko[j] = K, ko2[j] = K2, so[j] = s - 32 * p->odd_high;
                awo[j] = away ? 1LL << 31 : 0;
            }
        }
    cs->Q = Q, cs->bias = bias, cs->left = left, cs->d32 = d32, cs->hs = hs;
    cs->me = me, cs->mo = mo, cs->ke = ke, cs->ko = ko, cs->ke2 = ke2, cs->ko2 = ko2, cs->se = se, cs->so = so;
    cs->awe = awe, cs->awo = awo;
}

void em_dwconv_plan_init(em_dwconv_args *a, void *buf) {
    dw_layout L;
    a->plan = NULL;
    if (!buf || !dw_layout_of(a, &L)) return;
    uint8_t *q = (uint8_t *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
    em_dw_plan *p = (em_dw_plan *)q;
    q += L.hdr;
    const int C = a->out_c, taps = a->k_h * a->k_w;
    p->C = C, p->P = L.P, p->PL = L.PL, p->taps = taps, p->k_h = a->k_h;
    p->zp = a->rq.zp, p->act_min = a->rq.act_min, p->act_max = a->rq.act_max;
    p->any_left = p->any_away = 0;
    p->odd_high = 1;
    for (int c = 0; c < C; c++) {
        const int sh = a->rq.shift[c];
        p->odd_high &= sh <= -1;
        p->any_left |= sh > 0;
        p->any_away |= c >= a->rq.round_up_below && sh <= -1;
    }
    p->fast = p->odd_high && !p->any_left && !p->any_away;
    int8_t *wsp = (int8_t *)q;
    q += L.wsp;
    for (int t = 0; t < taps; t++)
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < L.PL; i++)
                wsp[((size_t)t * 2 + j) * L.PL + i] = i % 2 == j ? (int8_t)a->w[(size_t)t * C + i % C] : 0;
    p->wsp = wsp;
    dw_fill_consts(a, p, &p->sp, &q, L.Q, 0, L.i32, L.i64);
    int32_t *iw = (int32_t *)q;
    q += L.iw;
    for (int kh = 0; kh < a->k_h; kh++)
        for (int g = 0; g < L.G; g++)
            for (int k = 0; k < 4; k++)
                for (int y = 0; y < L.Y; y++) {
                    const int c = dw_lane_channel(1, y, k, C);
                    uint32_t v = 0;
                    for (int j = 0; j < 4 && 4 * g + j < a->k_w; j++)
                        v |= (uint32_t)(uint8_t)a->w[((size_t)kh * a->k_w + 4 * g + j) * C + c] << (8 * j);
                    iw[(((size_t)kh * L.G + g) * 4 + k) * L.Y + y] = (int32_t)v;
                }
    p->G = L.G, p->P64 = L.P64, p->irlen = L.irlen, p->iw = iw;
    dw_fill_consts(a, p, &p->in, &q, L.Y, 1, L.yi32, L.yi64);
    p->sw = a->stride_w, p->Ls = L.Ls, p->NS = L.NS, p->slot = L.slot, p->Wj = L.Wj, p->islot = L.islot;
    memset(q, (uint8_t)(int8_t)(-a->in_offset) ^ 0x80, L.zp);
    p->zprow = q;
    q += L.zp;
    const size_t threads = a->threads > 1 ? (size_t)a->threads : 1;
    p->rings = q;
    p->irings = q + threads * L.NS * L.slot;
    for (int kw = 0; kw < a->k_w; kw++)
        p->tap_off[kw] = (kw * a->dil_w) % a->stride_w * L.Ls + (kw * a->dil_w) / a->stride_w * C;
    a->plan = p;
}

/* d[i] = s[i] ^ 0x80 (x + 128 as u8), 32 bytes at a time (the plan runs on AVX2 and above). */
static inline EM_AVX2 void dw_xor_copy(uint8_t *restrict d, const int8_t *restrict s, size_t n) {
    size_t i = 0;
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (; i + 32 <= n; i += 32)
        _mm256_storeu_si256((__m256i *)(d + i),
                            _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(s + i)), flip));
    for (; i < n; i++) d[i] = (uint8_t)s[i] ^ 0x80;
}

/* One pixel's C bytes: 32- or 16-byte copies, the last one overlapping the one before (no byte loop). */
static inline EM_AVX2 void dw_xor_pixel(uint8_t *restrict d, const int8_t *restrict s, int C) {
    if (C >= 32) {
        const __m256i flip = _mm256_set1_epi8((char)0x80);
        for (int c = 0; c + 32 < C; c += 32)
            _mm256_storeu_si256((__m256i *)(d + c),
                                _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(s + c)), flip));
        _mm256_storeu_si256((__m256i *)(d + C - 32),
                            _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(s + C - 32)), flip));
    } else if (C >= 16) {
        const __m128i flip = _mm_set1_epi8((char)0x80);
        _mm_storeu_si128((__m128i *)d, _mm_xor_si128(_mm_loadu_si128((const __m128i *)s), flip));
        _mm_storeu_si128((__m128i *)(d + C - 16), _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s + C - 16)), flip));
    } else {
        for (int c = 0; c < C; c++) d[c] = (uint8_t)s[c] ^ 0x80;
    }
}

/* Input row (b, iy) into a row buffer: padded pixel X = ix + pad_left at phase row X % stride_w, index
 * X / stride_w, each input channel depth_mult times, as x ^ 0x80; pads hold the zero point's. */
static EM_AVX2 void dw_prep_row(const em_dwconv_args *a, const em_dw_plan *p, uint8_t *dst, const int8_t *src) {
    const int C = a->out_c, dm = a->depth_mult, ic = a->in_c, sw = p->sw, pl = a->pad_left;
    const uint8_t pad = p->zprow[0];
    for (int ph = 0; ph < sw; ph++) {
        uint8_t *d = dst + (size_t)ph * p->Ls;
        /* pixels j in [lo, hi) lie inside the image: 0 <= ph + j * sw - pl < in_w */
        int lo = pl - ph > 0 ? (pl - ph + sw - 1) / sw : 0;
        int hi = a->in_w + pl - ph > 0 ? (a->in_w + pl - ph + sw - 1) / sw : 0;
        if (lo > p->Wj) lo = p->Wj;
        if (hi > p->Wj) hi = p->Wj;
        if (hi < lo) hi = lo;
        memset(d, pad, (size_t)lo * C);
        memset(d + (size_t)hi * C, pad, (size_t)(p->Wj - hi) * C);
        const int8_t *s = src + (size_t)(ph + lo * sw - pl) * ic;
        if (dm == 1 && sw == 1) {
            dw_xor_copy(d + (size_t)lo * C, s, (size_t)(hi - lo) * C);
        } else {
            for (int j = lo; j < hi; j++, s += (size_t)sw * ic) {
                uint8_t *o = d + (size_t)j * C;
                if (dm == 1) {
                    dw_xor_pixel(o, s, C);
                } else {
                    for (int c = 0; c < ic; c++) memset(o + (size_t)c * dm, (uint8_t)s[c] ^ 0x80, (size_t)dm);
                }
            }
        }
    }
}

/* Output rows [r0, r1) through the row kernel on thread tid's ring of row buffers: each input row a row reads
 * is prepared once and kept while the next rows read it.  ilv: the interleaved layout (VNNI paths), each
 * input row prepared into a scratch row buffer, then interleaved into the ring. */
static void dw_flat_rows(const em_dwconv_args *a, em_dw_row_fn row, em_dw_ilv_fn ilv, int tid, int r0, int r1) {
    const em_dw_plan *p = (const em_dw_plan *)a->plan;
    const int len = a->out_w * a->out_c, G = p->G;
    uint8_t *ring = ilv ? p->irings + (size_t)tid * p->NS * p->islot : p->rings + (size_t)tid * p->NS * p->slot;
    uint8_t *scratch = p->rings + (size_t)tid * p->NS * p->slot; /* the spread ring, unused by ilv */
    const size_t slot = ilv ? p->islot : p->slot;
    long tags[DW_MAX_SLOTS];
    const uint8_t *tap[256], *src[256];
    for (int i = 0; i < p->NS; i++) tags[i] = -1;
    for (int r = r0; r < r1; r++) {
        const int b = r / a->out_h, oy = r % a->out_h;
        for (int kh = 0; kh < a->k_h; kh++) {
            const int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
            const uint8_t *rb = p->zprow;
            if (iy >= 0 && iy < a->in_h) {
                const int s = iy % p->NS;
                const long tag = (long)b * a->in_h + iy;
                uint8_t *buf = ring + (size_t)s * slot;
                if (tags[s] != tag) {
                    const int8_t *in = a->in + (size_t)tag * a->in_w * a->in_c;
                    if (ilv) {
                        dw_prep_row(a, p, scratch, in);
                        for (int kw = 0; kw < a->k_w; kw++) src[kw] = scratch + p->tap_off[kw];
                        ilv(p, src, a->k_w, buf, len);
                    } else {
                        dw_prep_row(a, p, buf, in);
                    }
                    tags[s] = tag;
                }
                rb = buf;
            }
            if (ilv)
                for (int g = 0; g < G; g++) tap[kh * G + g] = rb + (size_t)g * p->irlen;
            else
                for (int kw = 0; kw < a->k_w; kw++) tap[kh * a->k_w + kw] = rb + p->tap_off[kw];
        }
        row(p, tap, a->out + (size_t)r * len, len);
    }
}

/* Every output row; with threads, a contiguous block of rows per thread (its ring reused along the block).  One
 * thread calls the rows directly: an OpenMP region costs about a microsecond, a small layer's whole time. */
static void dw_flat(const em_dwconv_args *a, em_dw_row_fn row, em_dw_ilv_fn ilv) {
    const int rows = a->batch * a->out_h;
    if (a->threads <= 1) {
        dw_flat_rows(a, row, ilv, 0, 0, rows);
        return;
    }
#pragma omp parallel num_threads(a->threads)
    {
        int tid = 0, n = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        n = omp_get_num_threads();
#endif
        dw_flat_rows(a, row, ilv, tid, (int)((long)rows * tid / n), (int)((long)rows * (tid + 1) / n));
    }
}

/* Requantization of 8 lanes of stream k at lane q0 (even) of constants cs: the 64-bit single rounding of
 * depthwise_x86.h.  AVX2 has no 64-bit arithmetic shift: where every channel shifts right the result is the
 * sums' high halves shifted by s - 32 (32-bit arithmetic shifts); else the sums carry 2^63 (nonnegative as
 * unsigned), are shifted logically and give back 2^(63 - s). */
#define LD(ptr) _mm256_loadu_si256((const __m256i *)(ptr))
static EM_DW_INLINE EM_AVX2 __m256i dw_rq8(__m256i x, const em_dw_plan *p, const em_dw_consts *cs, int k, int q0,
                                           const int fast) {
    const size_t o32 = (size_t)k * cs->Q + q0, o64 = (size_t)k * (cs->Q / 2) + (q0 >> 1);
    /* fast (a constant where inlined): the plan's usual case, every channel shifting right with ties up, so the
     * row kernels built for it carry neither the branches nor the other cases' code */
    const int any_left = !fast && p->any_left, any_away = !fast && p->any_away, odd_high = fast || p->odd_high;
    if (any_left) x = _mm256_sllv_epi32(x, LD(cs->left + o32));
    __m256i pe = _mm256_mul_epi32(x, LD(cs->me + o64));
    __m256i po = _mm256_mul_epi32(_mm256_srli_epi64(x, 32), LD(cs->mo + o64));
    __m256i ae = _mm256_setzero_si256(), ao = ae; /* 2^31 where ties go away from zero and p < -2^30 */
    if (any_away) {
        const __m256i lim = _mm256_set1_epi64x(-(1LL << 30));
        ae = _mm256_and_si256(_mm256_cmpgt_epi64(lim, pe), LD(cs->awe + o64));
        ao = _mm256_and_si256(_mm256_cmpgt_epi64(lim, po), LD(cs->awo + o64));
    }
    if (odd_high) {
        pe = _mm256_add_epi64(pe, LD(cs->ke + o64));
        po = _mm256_add_epi64(po, LD(cs->ko + o64));
        if (any_away) {
            pe = _mm256_sub_epi64(pe, ae);
            po = _mm256_sub_epi64(po, ao);
        }
        return _mm256_srav_epi32(_mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA), LD(cs->hs + o32));
    }
    pe = _mm256_add_epi64(pe, LD(cs->ke2 + o64));
    po = _mm256_add_epi64(po, LD(cs->ko2 + o64));
    if (any_away) {
        pe = _mm256_sub_epi64(pe, ae);
        po = _mm256_sub_epi64(po, ao);
    }
    pe = _mm256_srlv_epi64(pe, LD(cs->se + o64));
    po = _mm256_slli_epi64(_mm256_srlv_epi64(po, LD(cs->so + o64)), 32);
    return _mm256_sub_epi32(_mm256_blend_epi32(pe, po, 0xAA), LD(cs->d32 + o32));
}

/* Registers 0..3 (requantized) -> 32 int8, n <= 32 stored: int32 -> int16 saturating, zp and the clamp in int16
 * (em_requant16_avx2's output stage).  Packing leaves per 128-bit lane register k's 4 lanes at bytes 4k..4k+3:
 * the interleaved layout's order; the spread one's is transposed per 16 bytes. */
static inline EM_AVX2 void dw_out32(__m256i r0, __m256i r1, __m256i r2, __m256i r3, const em_dw_plan *p,
                                    int spread, int8_t *out, int n) {
    const __m256i zp = _mm256_set1_epi16((short)p->zp);
    const __m256i lo = _mm256_set1_epi16((short)p->act_min), hi = _mm256_set1_epi16((short)p->act_max);
    __m256i s01 = _mm256_min_epi16(_mm256_max_epi16(_mm256_adds_epi16(_mm256_packs_epi32(r0, r1), zp), lo), hi);
    __m256i s23 = _mm256_min_epi16(_mm256_max_epi16(_mm256_adds_epi16(_mm256_packs_epi32(r2, r3), zp), lo), hi);
    __m256i b = _mm256_packs_epi16(s01, s23);
    if (spread) b = _mm256_shuffle_epi8(b, _mm256_setr_epi8(EM_DW_UNSPREAD, EM_DW_UNSPREAD));
    if (n >= 32) {
        _mm256_storeu_si256((__m256i *)out, b);
    } else {
        int8_t t[32];
        _mm256_storeu_si256((__m256i *)t, b);
        memcpy(out, t, (size_t)n);
    }
}

/* AVX2, spread layout: one output row in 32-byte chunks, two at a time (eight chains of multiply-adds).  Per tap
 * two vpmaddubsw, on the weights of the even (j = 0) and odd (j = 1) bytes, give each 16-bit lane one product
 * (the other weight byte is 0: no saturation, |.| <= 255 * 128): lanes 2l, 2l + 1 of j hold output bytes 4l + j
 * and 4l + j + 2; vpmaddwd by (1, 0) and by (0, 1) widens them into streams j and j + 2. */
#define DW_DP_AVX2(acc, m, sel) _mm256_add_epi32((acc), _mm256_madd_epi16((m), (sel)))
#define DW_RQ4(a, q) dw_rq8(a##0, p, cs, 0, q, fast), dw_rq8(a##1, p, cs, 1, q, fast), \
                     dw_rq8(a##2, p, cs, 2, q, fast), dw_rq8(a##3, p, cs, 3, q, fast)
/* Spread chunks f and, when two, f + 32 (eight chains of multiply-adds: one chunk's four wait on latency). */
static EM_DW_INLINE EM_AVX2 void dw_spread_chunks(const em_dw_plan *p, const uint8_t *const *tap, int8_t *out,
                                                  int len, int f, int ph, int ph1, const int two, const int fast) {
    const em_dw_consts *cs = &p->sp;
    const size_t PL = (size_t)p->PL;
    const int q0 = ph >> 2, q1 = ph1 >> 2;
    EM_DW_BIAS_INIT(__m256i, LD, cs, q0, q1, two);
    const int8_t *w = p->wsp + ph, *v = p->wsp + ph1;
    const __m256i lo = _mm256_set1_epi32(1), hi = _mm256_set1_epi32(1 << 16);
    for (int t = 0; t < p->taps; t++, w += 2 * PL, v += 2 * PL) {
        const __m256i x = LD(tap[t] + f);
        const __m256i m0 = _mm256_maddubs_epi16(x, LD(w)), m1 = _mm256_maddubs_epi16(x, LD(w + PL));
        a0 = DW_DP_AVX2(a0, m0, lo);
        a1 = DW_DP_AVX2(a1, m1, lo);
        a2 = DW_DP_AVX2(a2, m0, hi);
        a3 = DW_DP_AVX2(a3, m1, hi);
        if (two) {
            const __m256i y = LD(tap[t] + f + 32);
            const __m256i n0 = _mm256_maddubs_epi16(y, LD(v)), n1 = _mm256_maddubs_epi16(y, LD(v + PL));
            b0 = DW_DP_AVX2(b0, n0, lo);
            b1 = DW_DP_AVX2(b1, n1, lo);
            b2 = DW_DP_AVX2(b2, n0, hi);
            b3 = DW_DP_AVX2(b3, n1, hi);
        }
    }
    dw_out32(DW_RQ4(a, q0), p, 1, out + f, two ? 32 : len - f);
    if (two) dw_out32(DW_RQ4(b, q1), p, 1, out + f + 32, len - f - 32);
}

#define DW_SPREAD(...) dw_spread_chunks(__VA_ARGS__, 0)
#define DW_SPREAD_FAST(...) dw_spread_chunks(__VA_ARGS__, 1)
EM_DW_DEFINE_ROW(dw_row_avx2, static EM_AVX2, DW_SPREAD, 32, p->P)
EM_DW_DEFINE_ROW(dw_row_avx2_fast, static EM_AVX2, DW_SPREAD_FAST, 32, p->P)

#ifdef EM_HAVE_AVXVNNI
#define EM_DW_AVXVNNI __attribute__((target("avxvnni,avx2,fma")))
#define ST(ptr, v) _mm256_storeu_si256((__m256i *)(ptr), (v))
EM_DW_DEFINE_ILV(dw_ilv_avx2, static EM_AVX2, __m256i, _mm256_, LD, ST)
#undef ST

/* AVX-VNNI, interleaved 32-byte chunks: 8 output bytes per register; general and fast requantization. */
#define DW_ILV_OUTF(a0, a1, a2, a3, q, o, n, fast) \
    dw_out32(dw_rq8(a0, p, &p->in, 0, q, fast), dw_rq8(a1, p, &p->in, 1, q, fast), \
             dw_rq8(a2, p, &p->in, 2, q, fast), dw_rq8(a3, p, &p->in, 3, q, fast), p, 0, o, n)
#define DW_ILV_OUT(a0, a1, a2, a3, q, o, n) DW_ILV_OUTF(a0, a1, a2, a3, q, o, n, 0)
#define DW_ILV_OUT_FAST(a0, a1, a2, a3, q, o, n) DW_ILV_OUTF(a0, a1, a2, a3, q, o, n, 1)
EM_DW_DEFINE_ILV_CHUNKS(dw_ilv_chunks, EM_DW_AVXVNNI, __m256i, LD, _mm256_dpbusd_avx_epi32, DW_ILV_OUT)
EM_DW_DEFINE_ILV_CHUNKS(dw_ilv_chunks_fast, EM_DW_AVXVNNI, __m256i, LD, _mm256_dpbusd_avx_epi32, DW_ILV_OUT_FAST)
EM_DW_DEFINE_ROW(dw_row_avxvnni, static EM_DW_AVXVNNI, dw_ilv_chunks, 32, p->P64)
EM_DW_DEFINE_ROW(dw_row_avxvnni_fast, static EM_DW_AVXVNNI, dw_ilv_chunks_fast, 32, p->P64)
#endif
#undef LD
#else
size_t em_dwconv_plan_len(const em_dwconv_args *a) {
    (void)a;
    return 0; /* no plan off x86 */
}

void em_dwconv_plan_init(em_dwconv_args *a, void *buf) {
    (void)buf;
    a->plan = NULL;
}
#endif

void em_depthwise_conv2d(const void *args) {
    const em_dwconv_args *a = (const em_dwconv_args *)args;
#ifdef EM_HAVE_NEON
    if (em_dwconv_neon(a)) return; /* depthwise_neon.c: every depth multiplier on the neon/dotprod paths */
#endif
#ifdef EM_HAVE_AVX2
    const int isa = em_isa_get();
    if (a->plan && isa >= EM_ISA_AVX2) {
        const em_dw_plan *plan = (const em_dw_plan *)a->plan;
        if (isa == EM_ISA_AVX512VNNI)
            dw_flat(a, em_dw_row_avx512, em_dw_ilv_avx512);
#ifdef EM_HAVE_AVXVNNI
        else if (isa == EM_ISA_AVXVNNI)
            dw_flat(a, plan->fast ? dw_row_avxvnni_fast : dw_row_avxvnni, dw_ilv_avx2);
#endif
        else
            dw_flat(a, plan->fast ? dw_row_avx2_fast : dw_row_avx2, NULL);
        return;
    }
    if (isa >= EM_ISA_AVX2) {
        if (a->depth_mult == 1 && a->out_c >= 16) {
            dw_avx2_dm1(a);
            return;
        }
        if (a->k_h * a->k_w <= DW_MAX_TAPS) {
            dw_avx2_groups(a);
            return;
        }
    }
#endif
    /* portable groups only where one input channel feeds each group of 8 (dm % 8 == 0): the per-lane gather of
     * other multipliers costs more in plain C than the per-channel loop */
    if (a->depth_mult == 1)
        dw_portable_dm1(a);
    else if (a->depth_mult % 8 == 0)
        dw_portable_groups(a);
    else
        dw_portable(a);
}
