/* CONV_2D: im2col into int16 rows (input + in_offset, zero where the window
 * leaves the image: padding holds the zero point, which contributes nothing),
 * then the requantizing GEMM.  Rows are split across OpenMP threads. */
#include <string.h>
#include "conv_direct.h"
#include "conv_driver.h"
#include "requant.h"
#include "requant_panel_x86.h"

int em_conv_kp(int k_h, int k_w, int in_c) { return (k_h * k_w * in_c + 1) & ~1; }

/* A call per short run costs more than it saves: widen runs under 16 inline. */
static inline void widen_small(const int8_t *x, int16_t *y, int n, int32_t off) {
    if (n >= 16) {
        em_widen(x, y, (size_t)n, off);
        return;
    }
    for (int i = 0; i < n; i++) y[i] = (int16_t)(x[i] + off);
}

/* Rows m0..m1 of the im2col matrix into dst (row m at dst + (m - m0) * kp).  WIDEN(x, y, n, last) widens one
 * run of n input bytes; `last` is set for every run of the chunk's last row: a run that may write past its end
 * must be followed by writes that cover it, and past the last row lies the next thread's chunk (an interior
 * run of 3 channels writing 16 lanes reached 9 int16 into it: a race with 2 threads, seen on ResNet-8's stem). */
#define IM2COL_BODY(WIDEN)                                                                                    \
    const int hw = a->out_h * a->out_w;                                                                       \
    /* (b, oy, ox) of row m, stepped along rather than divided out per row */                                 \
    int b = m0 / hw, oy = (m0 % hw) / a->out_w, ox = m0 % a->out_w - 1;                                      \
    for (int m = m0; m < m1; m++) {                                                                           \
        if (++ox == a->out_w) {                                                                               \
            ox = 0;                                                                                           \
            if (++oy == a->out_h) {                                                                           \
                oy = 0;                                                                                       \
                b++;                                                                                          \
            }                                                                                                 \
        }                                                                                                     \
        int16_t *row = dst + (size_t)(m - m0) * kp;                                                           \
        int idx = 0;                                                                                          \
        const int run = a->k_w * a->in_c; /* one filter row of taps, contiguous in memory when dil_w == 1 */  \
        const int ix0 = ox * a->stride_w - a->pad_left;                                                       \
        const int row_inside = a->dil_w == 1 && ix0 >= 0 && ix0 + a->k_w <= a->in_w;                          \
        const int last_row = m + 1 == m1;                                                                     \
        for (int kh = 0; kh < a->k_h; kh++) {                                                                 \
            int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;                                           \
            if (iy < 0 || iy >= a->in_h) {                                                                    \
                memset(row + idx, 0, (size_t)run * sizeof(int16_t));                                          \
                idx += run;                                                                                   \
                continue;                                                                                     \
            }                                                                                                 \
            const int8_t *line = a->in + ((size_t)b * a->in_h + iy) * a->in_w * a->in_c;                      \
            if (row_inside) {                                                                                 \
                WIDEN(line + (size_t)ix0 * a->in_c, row + idx, run, last_row);                               \
                idx += run;                                                                                   \
                continue;                                                                                     \
            }                                                                                                 \
            for (int kw = 0; kw < a->k_w; kw++) {                                                             \
                int ix = ix0 + kw * a->dil_w;                                                                 \
                if (ix < 0 || ix >= a->in_w)                                                                  \
                    memset(row + idx, 0, (size_t)a->in_c * sizeof(int16_t));                                  \
                else                                                                                          \
                    WIDEN(line + (size_t)ix * a->in_c, row + idx, a->in_c, last_row);                         \
                idx += a->in_c;                                                                               \
            }                                                                                                 \
        }                                                                                                     \
        for (; idx < kp; idx++) row[idx] = 0;                                                                 \
    }

static inline int pointwise_rows(const em_conv_args *a, int kp, int m0, int m1, int16_t *dst) {
    if (a->k_h == 1 && a->k_w == 1 && a->stride_h == 1 && a->stride_w == 1 && a->pad_top == 0 &&
        a->pad_left == 0 && kp == a->in_c) {
        /* pointwise conv: the rows are the input pixels themselves */
        em_widen(a->in + (size_t)m0 * kp, dst, (size_t)(m1 - m0) * kp, a->in_offset);
        return 1;
    }
    return 0;
}

#define WIDEN_PORTABLE(x, y, n, last) ((void)(last), widen_small((x), (y), (n), a->in_offset))
static void im2col_rows(const em_conv_args *a, int kp, int m0, int m1, int16_t *dst) {
    if (pointwise_rows(a, kp, m0, m1, dst)) return;
    IM2COL_BODY(WIDEN_PORTABLE)
}

#ifdef EM_HAVE_NEON
/* widen_run_avx2's twin on aarch64 (same spill rules): saddw onto the offset, 16 bytes a step, inline. */
static inline void widen_run_neon(const int8_t *x, int16_t *y, int n, int16x8_t off, const int8_t *in_end, int last) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const int8x16_t v = vld1q_s8(x + i);
        vst1q_s16(y + i, vaddw_s8(off, vget_low_s8(v)));
        vst1q_s16(y + i + 8, vaddw_high_s8(off, v));
    }
    if (i == n) return;
    if (!last && x + i + 16 <= in_end) {
        const int8x16_t v = vld1q_s8(x + i);
        vst1q_s16(y + i, vaddw_s8(off, vget_low_s8(v)));
        vst1q_s16(y + i + 8, vaddw_high_s8(off, v));
        return;
    }
    const int16_t o = vgetq_lane_s16(off, 0);
    for (; i < n; i++) y[i] = (int16_t)(x[i] + o);
}

#define WIDEN_NEON(x, y, n, last) widen_run_neon((x), (y), (n), off16, in_end, (last))
static void im2col_rows_neon(const em_conv_args *args, int kp, int m0, int m1, int16_t *dst) {
    if (pointwise_rows(args, kp, m0, m1, dst)) return;
    /* the shape in a local copy: under -fno-strict-aliasing every int16 store into dst could otherwise change
     * *args, and gcc reloaded its fields for each run (a third of this path's instructions) */
    const em_conv_args copy = *args, *a = &copy;
    const int16x8_t off16 = vdupq_n_s16((int16_t)a->in_offset);
    const int8_t *in_end = a->in + (size_t)a->batch * a->in_h * a->in_w * a->in_c;
    IM2COL_BODY(WIDEN_NEON)
}
#endif

#ifdef EM_HAVE_AVX2
/* One run, 16 bytes at a time, inline (a call per run of 9..64 taps cost as much as the widening).  The last
 * partial block is widened whole when that stays inside the input and the 15 int16 it may write past the run
 * are rewritten later: by the next run or row of this chunk (rows are filled in order, every position of a row
 * written); the runs of the chunk's last row (`last`) finish element by element. */
static inline EM_AVX2 void widen_run_avx2(const int8_t *x, int16_t *y, int n, __m256i off, const int8_t *in_end,
                                               int last) {
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i),
                            _mm256_add_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + i))), off));
    if (i == n) return;
    if (!last && x + i + 16 <= in_end) {
        _mm256_storeu_si256((__m256i *)(y + i),
                            _mm256_add_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + i))), off));
        return;
    }
    const int16_t o = (int16_t)_mm256_extract_epi16(off, 0);
    for (; i < n; i++) y[i] = (int16_t)(x[i] + o);
}

#define WIDEN_AVX2(x, y, n, last) widen_run_avx2((x), (y), (n), off16, in_end, (last))
static EM_AVX2 void im2col_rows_avx2(const em_conv_args *a, int kp, int m0, int m1, int16_t *dst) {
    if (pointwise_rows(a, kp, m0, m1, dst)) return;
    const __m256i off16 = _mm256_set1_epi16((short)a->in_offset);
    const int8_t *in_end = a->in + (size_t)a->batch * a->in_h * a->in_w * a->in_c;
    IM2COL_BODY(WIDEN_AVX2)
}

/* One widened input row of the padded-row conv (conv_rows_avx2), 16 bytes at a time, inline. */
static inline EM_AVX2 void widen_line_avx2(const int8_t *src, int16_t *dst, size_t n, int32_t off) {
    const __m256i o = _mm256_set1_epi16((short)off);
    const int len = (int)n;
    int i = 0;
    for (; i + 16 <= len; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm256_add_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(src + i))), o));
    for (; i < len; i++) dst[i] = (int16_t)(src[i] + off);
}

/* CONV_2D without im2col, AVX2: per output row, the k_h input rows it reads are widened once into padded lines
 * (zero columns where the windows leave the image, a zero line for rows outside it), so that a window's filter
 * row is runs of int16 read as int32 pairs: one run of k_w x in_c with dilation 1 along rows (odd channel counts
 * included: an odd run reads one int16 past itself, against a zero weight, em_conv_rows16_weights), else a run
 * of in_c per tap, dil_w pixels apart (even in_c).  A 4-pixel x 16-channel tile of madd_epi16; no per-tap
 * border work. */
typedef struct {
    int wp, x0, x1; /* padded line width (pixels); the image's columns in it: [x0, x1) */
    size_t lw;      /* int16 per line: wp x in_c and 2 more (the odd run's read past the last pixel) */
} rows16_geom;

static rows16_geom rows16_dims(const em_conv_args *a) {
    rows16_geom g;
    g.wp = (a->out_w - 1) * a->stride_w + (a->k_w - 1) * a->dil_w + 1;
    g.x0 = a->pad_left < g.wp ? a->pad_left : g.wp;
    g.x1 = a->pad_left + a->in_w < g.wp ? a->pad_left + a->in_w : g.wp;
    if (g.x1 < g.x0) g.x1 = g.x0;
    g.lw = (size_t)g.wp * a->in_c + 2;
    return g;
}

/* The shape this path takes: dilation 1 along rows or an even channel count, a window (pointwise stride 1 is a
 * plain GEMM already), the weights packed for it, and the zero line plus k_h lines inside this thread's im2col
 * scratch. */
static int rows16_fits(const em_conv_args *a, int kp) {
    if ((a->dil_w != 1 && a->k_w > 1 && a->in_c % 2) || a->k_h > EM_DIRECT_MAX_KH) return 0;
    if (em_conv_rows16_weights(a) == NULL) return 0;
    if (a->k_h == 1 && a->k_w == 1 && a->stride_h == 1 && a->stride_w == 1) return 0;
    const rows16_geom g = rows16_dims(a);
    return (size_t)(a->k_h + 1) * g.lw <= (size_t)EM_CONV_ROWS * kp;
}

static inline int32_t load_pair(const int16_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static EM_AVX2 void conv_rows_avx2(const em_conv_args *a, int kp) {
    const em_requant rq = a->rq; /* a local copy: the int8 stores may alias *a to gcc (reloads per store) */
    const int rows = a->batch * a->out_h, C = a->in_c, N = a->out_c, out_w = a->out_w;
    /* the runs of a filter row: nt of tp2 int32 pairs each, ts int16 apart */
    const int whole = a->dil_w == 1 || a->k_w == 1, nt = whole ? 1 : a->k_w;
    const int tp2 = whole ? (a->k_w * C + 1) / 2 : C / 2, rp2 = nt * tp2; /* int32 pairs per filter row */
    const size_t ts = (size_t)a->dil_w * C;
    const size_t px = (size_t)a->stride_w * C; /* int16 from one output pixel's window to the next's */
    const rows16_geom g = rows16_dims(a);
    const int16_t *w = em_conv_rows16_weights(a);
    const size_t wpanel = (size_t)a->k_h * rp2 * 2 * EM_NR;
#pragma omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)
    for (int r = 0; r < rows; r++) {
        int16_t *buf = a->scratch + (size_t)EM_THREAD_NUM() * EM_CONV_ROWS * kp;
        const int16_t *line[EM_DIRECT_MAX_KH];
        const int b = r / a->out_h, oy = r % a->out_h;
        int zeroed = 0;
        for (int kh = 0; kh < a->k_h; kh++) {
            const int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
            if (iy < 0 || iy >= a->in_h) {
                if (!zeroed) memset(buf, 0, g.lw * sizeof(int16_t));
                zeroed = 1;
                line[kh] = buf;
                continue;
            }
            int16_t *dst = buf + (size_t)(kh + 1) * g.lw;
            memset(dst, 0, (size_t)g.x0 * C * sizeof(int16_t));
            widen_line_avx2(a->in + ((size_t)b * a->in_h + iy) * a->in_w * C, dst + (size_t)g.x0 * C,
                            (size_t)(g.x1 - g.x0) * C, a->in_offset);
            memset(dst + (size_t)g.x1 * C, 0, (g.lw - (size_t)g.x1 * C) * sizeof(int16_t));
            line[kh] = dst;
        }
        int8_t *orow = a->out + (size_t)r * out_w * N;
        for (int nb = 0; nb * EM_NR < N; nb++) {
            const int16_t *wb = w + (size_t)nb * wpanel;
            const int c0 = nb * EM_NR, n = N - c0 < EM_NR ? N - c0 : EM_NR;
            rq256_panel q; /* the panel's output stage, prepared once per output row */
            rq256_panel_prep(&q, &rq, c0);
            const __m256i b0 = _mm256_loadu_si256((const __m256i *)(a->bias + c0));
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)(a->bias + c0 + 8));
            int ox = 0;
            for (; ox + 4 <= out_w; ox += 4) {
                __m256i c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1, c30 = b0, c31 = b1;
                for (int kt = 0; kt < a->k_h * nt; kt++) {
                    const int16_t *p0 = line[kt / nt] + (size_t)ox * px + (size_t)(kt % nt) * ts;
                    const int16_t *p1 = p0 + px, *p2 = p1 + px, *p3 = p2 + px;
                    const int16_t *wt = wb + (size_t)kt * tp2 * 2 * EM_NR;
                    for (int c = 0; c < tp2; c++) {
                        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(wt + (size_t)c * 2 * EM_NR));
                        const __m256i w1 = _mm256_loadu_si256((const __m256i *)(wt + (size_t)c * 2 * EM_NR + 16));
                        __m256i x = _mm256_set1_epi32(load_pair(p0 + 2 * c));
                        c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(x, w0));
                        c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(x, w1));
                        x = _mm256_set1_epi32(load_pair(p1 + 2 * c));
                        c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(x, w0));
                        c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(x, w1));
                        x = _mm256_set1_epi32(load_pair(p2 + 2 * c));
                        c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(x, w0));
                        c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(x, w1));
                        x = _mm256_set1_epi32(load_pair(p3 + 2 * c));
                        c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(x, w0));
                        c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(x, w1));
                    }
                }
                int8_t *o = orow + (size_t)ox * N + c0;
                rq256_store_rows2(c00, c01, c10, c11, &q, &rq, c0, n, o, o + N);
                rq256_store_rows2(c20, c21, c30, c31, &q, &rq, c0, n, o + 2 * (size_t)N, o + 3 * (size_t)N);
            }
            for (; ox < out_w; ox++) {
                __m256i c00 = b0, c01 = b1;
                for (int kt = 0; kt < a->k_h * nt; kt++) {
                    const int16_t *p0 = line[kt / nt] + (size_t)ox * px + (size_t)(kt % nt) * ts;
                    const int16_t *wt = wb + (size_t)kt * tp2 * 2 * EM_NR;
                    for (int c = 0; c < tp2; c++) {
                        const __m256i x = _mm256_set1_epi32(load_pair(p0 + 2 * c));
                        const __m256i *wc = (const __m256i *)(wt + (size_t)c * 2 * EM_NR);
                        c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(x, _mm256_loadu_si256(wc)));
                        c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(x, _mm256_loadu_si256(wc + 1)));
                    }
                }
                rq256_store16(c00, c01, &q, &rq, c0, n, orow + (size_t)ox * N + c0);
            }
        }
    }
}
#endif

/* The int16 path through the shared driver: im2col rows into this thread's scratch slice, then em_gemm. */
static void fill_im2col16(const em_conv_args *a, const void *ctx, int m0, int m1, void *buf, const void **rows) {
    const int kp = *(const int *)ctx;
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2)
        im2col_rows_avx2(a, kp, m0, m1, (int16_t *)buf);
    else
#endif
#ifdef EM_HAVE_NEON
    if (em_isa_get() >= EM_ISA_NEON)
        im2col_rows_neon(a, kp, m0, m1, (int16_t *)buf);
    else
#endif
        im2col_rows(a, kp, m0, m1, (int16_t *)buf);
    rows[0] = buf;
}

static void gemm16(const em_conv_args *a, const void *ctx, const void *buf, const void *const *rows, int n,
                   int8_t *out) {
    (void)rows;
    em_gemm_args g = {n, a->out_c, *(const int *)ctx, (const int16_t *)buf, a->w, a->bias, a->rq, out, a->out_c};
    em_gemm(&g, 0, n);
}

size_t em_conv_scratch_bytes(const em_conv_args *a) {
    const size_t im2col = (size_t)(a->threads > 1 ? a->threads : 1) * EM_CONV_ROWS *
                          em_conv_kp(a->k_h, a->k_w, a->in_c) * sizeof(int16_t);
    const size_t image = em_conv_vnni_image_bytes(a);
    return image > im2col ? image : im2col;
}

void em_conv2d(const void *args) {
    const em_conv_args *a = (const em_conv_args *)args;
    if (em_conv2d_vnni(a)) return; /* vpdpbusd GEMM (indirect, or on u8 im2col) where a VNNI path is in effect */
#ifdef EM_HAVE_NEON
    if (em_conv2d_sdot(a)) return; /* int8 im2col + sdot GEMM where the dotprod path is in effect */
    if (em_conv2d_neon(a)) return; /* no im2col on the neon path where the shape fits (gemm_neon.c) */
#endif
    const int kp = em_conv_kp(a->k_h, a->k_w, a->in_c);
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2 && rows16_fits(a, kp)) {
        conv_rows_avx2(a, kp);
        return;
    }
#endif
    /* chunks of EM_CONV_ROWS rows (a multiple of the GEMM's 4-row tile): scratch stays threads x EM_CONV_ROWS
     * rows whatever the image size */
    const em_conv_path p = {fill_im2col16, gemm16, &kp, (size_t)EM_CONV_ROWS * kp * sizeof(int16_t), 0, 0};
    em_conv_run(a, &p);
}
