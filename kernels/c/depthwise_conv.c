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
                em_requant_row_portable(acc, n, &a->rq, c0, orow + (size_t)ox * C + c0);
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

void em_depthwise_conv2d(const void *args) {
    const em_dwconv_args *a = (const em_dwconv_args *)args;
#ifdef EM_HAVE_NEON
    if (em_dwconv_neon(a)) return; /* depthwise_neon.c: every depth multiplier on the neon/dotprod paths */
#endif
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2) {
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
    if (a->depth_mult % 8 == 0) dw_portable_groups(a); else dw_portable(a);
}
