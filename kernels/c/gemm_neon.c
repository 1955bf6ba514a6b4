/* NEON path of the int16 GEMM (CONV_2D via im2col, FULLY_CONNECTED) and of the operand widening, on the
 * panels gemm.c packs: [N/16][Kp/2][16 lanes][2] int16.  One ld2 per half panel splits each k pair into the
 * even-k and odd-k weights of 8 channels; smlal / smlal2 by element multiply them by one activation of a row
 * and add to int32 lanes.  A tile is 4 rows x 16 channels: 16 accumulators, 4 weight vectors and 4 activation
 * pairs, 24 of the 32 vector registers.  Sums are exact int32 (|a| <= 255, |w| <= 127, as on every path), so
 * the bytes are the portable path's whatever the order; the output stage is requant.h's NEON requantization. */
#include <string.h>
#include "conv_direct.h"
#include "conv_driver.h"
#include "requant.h"

#ifdef EM_HAVE_NEON

/* acc[0..3] (channels 0..15) += a[0] * w(even k) + a[1] * w(odd k) for one k pair; av holds a[0], a[1], a[0], a[1] */
#define EM_NEON_MAC_ROW(c, av)                                                   \
    do {                                                                        \
        c##0 = vmlal_lane_s16(c##0, vget_low_s16(w0.val[0]), av, 0);            \
        c##0 = vmlal_lane_s16(c##0, vget_low_s16(w0.val[1]), av, 1);            \
        c##1 = vmlal_high_lane_s16(c##1, w0.val[0], av, 0);                     \
        c##1 = vmlal_high_lane_s16(c##1, w0.val[1], av, 1);                     \
        c##2 = vmlal_lane_s16(c##2, vget_low_s16(w1.val[0]), av, 0);            \
        c##2 = vmlal_lane_s16(c##2, vget_low_s16(w1.val[1]), av, 1);            \
        c##3 = vmlal_high_lane_s16(c##3, w1.val[0], av, 0);                     \
        c##3 = vmlal_high_lane_s16(c##3, w1.val[1], av, 1);                     \
    } while (0)

/* the same from a row's 8 activations (4 k pairs) in one register: pair j is lanes 2j, 2j + 1 */
#define EM_NEON_MAC_ROWQ(c, xv, l0, l1)                                         \
    do {                                                                        \
        c##0 = vmlal_laneq_s16(c##0, vget_low_s16(w0.val[0]), xv, l0);          \
        c##0 = vmlal_laneq_s16(c##0, vget_low_s16(w0.val[1]), xv, l1);          \
        c##1 = vmlal_high_laneq_s16(c##1, w0.val[0], xv, l0);                   \
        c##1 = vmlal_high_laneq_s16(c##1, w0.val[1], xv, l1);                   \
        c##2 = vmlal_laneq_s16(c##2, vget_low_s16(w1.val[0]), xv, l0);          \
        c##2 = vmlal_laneq_s16(c##2, vget_low_s16(w1.val[1]), xv, l1);          \
        c##3 = vmlal_high_laneq_s16(c##3, w1.val[0], xv, l0);                   \
        c##3 = vmlal_high_laneq_s16(c##3, w1.val[1], xv, l1);                   \
    } while (0)

/* k pair k + j of a 4-pair step: the panel's weights, then the 4 rows */
#define EM_NEON_STEP(j)                                                         \
    do {                                                                        \
        const int16x8x2_t w0 = vld2q_s16(wb + (size_t)(k + j) * 32);            \
        const int16x8x2_t w1 = vld2q_s16(wb + (size_t)(k + j) * 32 + 16);       \
        EM_NEON_MAC_ROWQ(c0, q0, 2 * j, 2 * j + 1);                           \
        EM_NEON_MAC_ROWQ(c1, q1, 2 * j, 2 * j + 1);                           \
        EM_NEON_MAC_ROWQ(c2, q2, 2 * j, 2 * j + 1);                           \
        EM_NEON_MAC_ROWQ(c3, q3, 2 * j, 2 * j + 1);                           \
    } while (0)

static inline int16x4_t em_pair(const int16_t *a) {
    int32_t v;
    __builtin_memcpy(&v, a, sizeof v); /* the rows are int16 pairs; no alignment assumed */
    return vreinterpret_s16_s32(vdup_n_s32(v));
}

/* c00..c33 += the npairs k pairs of the 4 int16 rows r0..r3 times the panel's weights from wb: 4 pairs (8
 * activations of each row) per load, then pair by pair */
#define EM_NEON_PAIRS(r0, r1, r2, r3, npairs)                                                                 \
    do {                                                                                                      \
        int k = 0;                                                                                            \
        for (; k + 4 <= (npairs); k += 4) {                                                                   \
            const int16x8_t q0 = vld1q_s16((r0) + 2 * k), q1 = vld1q_s16((r1) + 2 * k);                       \
            const int16x8_t q2 = vld1q_s16((r2) + 2 * k), q3 = vld1q_s16((r3) + 2 * k);                       \
            EM_NEON_STEP(0);                                                                                  \
            EM_NEON_STEP(1);                                                                                  \
            EM_NEON_STEP(2);                                                                                  \
            EM_NEON_STEP(3);                                                                                  \
        }                                                                                                     \
        for (; k < (npairs); k++) {                                                                           \
            const int16x8x2_t w0 = vld2q_s16(wb + (size_t)k * 32);                                            \
            const int16x8x2_t w1 = vld2q_s16(wb + (size_t)k * 32 + 16);                                       \
            const int16x4_t x0 = em_pair((r0) + 2 * k), x1 = em_pair((r1) + 2 * k);                           \
            const int16x4_t x2 = em_pair((r2) + 2 * k), x3 = em_pair((r3) + 2 * k);                           \
            EM_NEON_MAC_ROW(c0, x0);                                                                          \
            EM_NEON_MAC_ROW(c1, x1);                                                                          \
            EM_NEON_MAC_ROW(c2, x2);                                                                          \
            EM_NEON_MAC_ROW(c3, x3);                                                                          \
        }                                                                                                     \
    } while (0)

/* the first `rows` of the tile's 4 rows (c00..c33) requantized into o, o + ldo, ...: channels c0.., n of them */
#define EM_NEON_STORE4(rq, c0, n, rows, o, ldo)                                                               \
    do {                                                                                                      \
        em_requant16_neon(c00, c01, c02, c03, (rq), (c0), (n), (o));                                          \
        if ((rows) > 1) em_requant16_neon(c10, c11, c12, c13, (rq), (c0), (n), (o) + (ldo));                 \
        if ((rows) > 2) em_requant16_neon(c20, c21, c22, c23, (rq), (c0), (n), (o) + 2 * (size_t)(ldo));      \
        if ((rows) > 3) em_requant16_neon(c30, c31, c32, c33, (rq), (c0), (n), (o) + 3 * (size_t)(ldo));      \
    } while (0)

void em_gemm_neon(const em_gemm_args *g, int m0, int m1) {
    const int k2 = g->Kp / 2;
    for (int nb = 0; nb * EM_NR < g->N; nb++) {
        const int16_t *wb = g->w + (size_t)nb * k2 * 2 * EM_NR;
        const int c0 = nb * EM_NR;
        const int n = g->N - c0 < EM_NR ? g->N - c0 : EM_NR;
        const int32x4_t b0 = vld1q_s32(g->bias + c0), b1 = vld1q_s32(g->bias + c0 + 4);
        const int32x4_t b2 = vld1q_s32(g->bias + c0 + 8), b3 = vld1q_s32(g->bias + c0 + 12);
        for (int m = m0; m < m1; m += 4) {
            const int rows = m1 - m < 4 ? m1 - m : 4;
            /* rows past m1 reread row m (valid memory); their sums are dropped */
            const int16_t *a0 = g->a + (size_t)m * g->Kp;
            const int16_t *a1 = rows > 1 ? a0 + g->Kp : a0;
            const int16_t *a2 = rows > 2 ? a0 + 2 * (size_t)g->Kp : a0;
            const int16_t *a3 = rows > 3 ? a0 + 3 * (size_t)g->Kp : a0;
            /* 16 named accumulators, not an array: gcc keeps them in registers */
            int32x4_t c00 = b0, c01 = b1, c02 = b2, c03 = b3, c10 = b0, c11 = b1, c12 = b2, c13 = b3;
            int32x4_t c20 = b0, c21 = b1, c22 = b2, c23 = b3, c30 = b0, c31 = b1, c32 = b2, c33 = b3;
            EM_NEON_PAIRS(a0, a1, a2, a3, k2);
            EM_NEON_STORE4(&g->rq, c0, n, rows, g->out + (size_t)m * g->ldo + c0, g->ldo);
        }
    }
}

/* ---- CONV_2D without im2col on the neon path (conv_direct.h; the scheme of the former AVX2 tap-pair direct
 * conv): em_direct_lines widens an output row's input rows once, and em_gemm_neon's 4-pixel x 16-channel tile
 * reads each tap's channel pairs straight from them.  The same products and exact int32 sums as im2col +
 * em_gemm_neon, so the same bytes. */

/* One 4-pixel x 16-channel tile over all taps: pix[4 t + i] is pixel i's input (int16 channels) for tap t.  Not
 * inlined: inside conv_direct_neon's row loop gcc spilled the 16 accumulators (~30% more instructions). */
__attribute__((noinline)) static void direct_tile_neon(const int16_t *const *pix, int taps, int c2n,
                                                       const int16_t *wbase, int32x4_t b0, int32x4_t b1, int32x4_t b2,
                                                       int32x4_t b3, const em_requant *rq, int c0, int n, int cnt,
                                                       int8_t *o, int ldo) {
    int32x4_t c00 = b0, c01 = b1, c02 = b2, c03 = b3, c10 = b0, c11 = b1, c12 = b2, c13 = b3;
    int32x4_t c20 = b0, c21 = b1, c22 = b2, c23 = b3, c30 = b0, c31 = b1, c32 = b2, c33 = b3;
#pragma GCC unroll 1
    for (int t = 0; t < taps; t++) {
        const int16_t *p0 = pix[4 * t], *p1 = pix[4 * t + 1], *p2 = pix[4 * t + 2], *p3 = pix[4 * t + 3];
        const int16_t *wb = wbase + (size_t)t * c2n * 2 * EM_NR; /* this tap's k pairs */
        EM_NEON_PAIRS(p0, p1, p2, p3, c2n);
    }
    EM_NEON_STORE4(rq, c0, n, cnt, o, ldo);
}

#define EM_DIRECT_MAX_TAPS 64

static void conv_direct_neon(const em_conv_args *a, int kp) {
    const int rows = a->batch * a->out_h, C = a->in_c, c2n = C / 2, N = a->out_c, k2 = kp / 2;
    const int in_w = a->in_w, sw = a->stride_w, taps = a->k_h * a->k_w;
    const size_t step = (size_t)sw * C, dstep = (size_t)a->dil_w * C; /* int16 to the next pixel, next tap */
    const em_direct_span cols = em_direct_interior(a); /* every kw tap inside the image */
#pragma omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)
    for (int r = 0; r < rows; r++) {
        const int16_t *zero, *line[EM_DIRECT_MAX_KH];
        const int rows_inside = em_direct_lines(a, kp, r, EM_THREAD_NUM(), em_widen_neon, &zero, line);
        int8_t *orow = a->out + (size_t)r * a->out_w * N;
        for (int ox = 0; ox < a->out_w; ox += 4) {
            const int cnt = a->out_w - ox < 4 ? a->out_w - ox : 4; /* pixels past the row reread pixel ox */
            const int16_t *pix[4 * EM_DIRECT_MAX_TAPS];
            if (rows_inside && cnt == 4 && ox >= cols.lo && ox + 4 <= cols.hi) { /* every tap inside: no checks */
                const int16_t **pp = pix;
                for (int kh = 0; kh < a->k_h; kh++) {
                    const int16_t *p = line[kh] + (size_t)(ox * sw - a->pad_left) * C;
                    for (int kw = 0; kw < a->k_w; kw++, p += dstep, pp += 4) {
                        pp[0] = p;
                        pp[1] = p + step;
                        pp[2] = p + 2 * step;
                        pp[3] = p + 3 * step;
                    }
                }
            } else {
                for (int kh = 0; kh < a->k_h; kh++)
                    for (int kw = 0; kw < a->k_w; kw++)
                        for (int i = 0; i < 4; i++) {
                            const int ix = (ox + (i < cnt ? i : 0)) * sw - a->pad_left + kw * a->dil_w;
                            pix[4 * (kh * a->k_w + kw) + i] =
                                line[kh] && ix >= 0 && ix < in_w ? line[kh] + (size_t)ix * C : zero;
                        }
            }
            for (int nb = 0; nb * EM_NR < N; nb++) {
                const int c0 = nb * EM_NR, n = N - c0 < EM_NR ? N - c0 : EM_NR;
                direct_tile_neon(pix, taps, c2n, a->w + (size_t)nb * k2 * 2 * EM_NR, vld1q_s32(a->bias + c0),
                                 vld1q_s32(a->bias + c0 + 4), vld1q_s32(a->bias + c0 + 8),
                                 vld1q_s32(a->bias + c0 + 12), &a->rq, c0, n, cnt, orow + (size_t)ox * N + c0, N);
            }
        }
    }
}

static int conv_neon8(const em_conv_args *a);

int em_conv2d_neon(const em_conv_args *a) {
    if (em_isa_get() != EM_ISA_NEON) return 0;
    if (conv_neon8(a)) return 1; /* int8 smull GEMM where no weight is -128 (below) */
    const int kp = em_conv_kp(a->k_h, a->k_w, a->in_c);
    if (a->k_h * a->k_w > EM_DIRECT_MAX_TAPS || !em_direct_fits(a, kp)) return 0;
    conv_direct_neon(a, kp);
    return 1;
}

void em_widen_neon(const int8_t *x, int16_t *y, size_t n, int32_t off) {
    /* x + off fits int16 (|off| <= 128), so the 16-bit add cannot wrap */
    const int16x8_t o = vdupq_n_s16((int16_t)off);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const int8x16_t v = vld1q_s8(x + i);
        vst1q_s16(y + i, vaddq_s16(vmovl_s8(vget_low_s8(v)), o));
        vst1q_s16(y + i + 8, vaddq_s16(vmovl_high_s8(v), o));
    }
    for (; i < n; i++) y[i] = (int16_t)(x[i] + off);
}

/* ---- SDOT (ARMv8.2 dot product) path: int8 x int8 on the int8 panels [N/16][K4/4][16][4] that em_pack_weights
 * appends (with the column sums) when the CPU has a VNNI or a dot-product path.  sdot multiplies signed by
 * signed bytes, so the activations go in as they are (no +128 flip as vpdpbusd needs) and
 *     sum_k (x + in_offset) w = sum_k x w + in_offset sum_k w:
 * the column-sum term is folded into the accumulators' start with the bias.  Padding taps hold the zero point
 * (x + in_offset = 0), the k4 tail zeros against zero weights.  All int32, wrapping: the true sums fit, so the
 * bytes are the portable path's. */
#define EM_SDOT __attribute__((target("arch=armv8.2-a+dotprod")))

typedef struct {
    int N, K4;
    const int8_t *a;          /* rows of K4 int8 */
    const int8_t *w;          /* [ceil(N/16)][K4/4][16][4] */
    const int32_t *colsum, *bias;
    int32_t off;              /* in_offset */
    const em_requant *rq;
    int8_t *out;
    int ldo;
} em_gemm8;

static inline int8x16_t em_dup4(const int8_t *p) {
    int32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

/* 4 rows x 16 channels per tile: 16 accumulators, 4 weight vectors, 4 broadcast activations */
static EM_SDOT void gemm_sdot(const em_gemm8 *g, int m0, int m1) {
    const int nblocks = (g->N + EM_NR - 1) / EM_NR;
    const int32x4_t off = vdupq_n_s32(g->off);
    for (int nb = 0; nb < nblocks; nb++) {
        const int c0 = nb * EM_NR;
        const int n = g->N - c0 < EM_NR ? g->N - c0 : EM_NR;
        const int8_t *wp = g->w + (size_t)nb * g->K4 * EM_NR;
        int32x4_t b[4];
        for (int q = 0; q < 4; q++) b[q] = vmlaq_s32(vld1q_s32(g->bias + c0 + 4 * q), off, vld1q_s32(g->colsum + c0 + 4 * q));
        for (int m = m0; m < m1; m += 4) {
            const int rows = m1 - m < 4 ? m1 - m : 4;
            const int8_t *a0 = g->a + (size_t)m * g->K4;
            const int8_t *a1 = rows > 1 ? a0 + g->K4 : a0;
            const int8_t *a2 = rows > 2 ? a0 + 2 * (size_t)g->K4 : a0;
            const int8_t *a3 = rows > 3 ? a0 + 3 * (size_t)g->K4 : a0;
            /* 16 named accumulators, not an array: gcc keeps them in registers */
            int32x4_t c00 = b[0], c01 = b[1], c02 = b[2], c03 = b[3], c10 = b[0], c11 = b[1], c12 = b[2], c13 = b[3];
            int32x4_t c20 = b[0], c21 = b[1], c22 = b[2], c23 = b[3], c30 = b[0], c31 = b[1], c32 = b[2], c33 = b[3];
            int k = 0;
            for (; k + 16 <= g->K4; k += 16) { /* 16 activations (4 groups) of each row in one load */
                const int8x16_t q0 = vld1q_s8(a0 + k), q1 = vld1q_s8(a1 + k);
                const int8x16_t q2 = vld1q_s8(a2 + k), q3 = vld1q_s8(a3 + k);
#define EM_SDOT_GROUP(j)                                                        \
    do {                                                                        \
        const int8_t *w = wp + (size_t)(k + 4 * j) * EM_NR;                     \
        const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16);                \
        const int8x16_t w2 = vld1q_s8(w + 32), w3 = vld1q_s8(w + 48);           \
        c00 = vdotq_laneq_s32(c00, w0, q0, j);                          \
        c01 = vdotq_laneq_s32(c01, w1, q0, j);                          \
        c02 = vdotq_laneq_s32(c02, w2, q0, j);                          \
        c03 = vdotq_laneq_s32(c03, w3, q0, j);                          \
        c10 = vdotq_laneq_s32(c10, w0, q1, j);                          \
        c11 = vdotq_laneq_s32(c11, w1, q1, j);                          \
        c12 = vdotq_laneq_s32(c12, w2, q1, j);                          \
        c13 = vdotq_laneq_s32(c13, w3, q1, j);                          \
        c20 = vdotq_laneq_s32(c20, w0, q2, j);                          \
        c21 = vdotq_laneq_s32(c21, w1, q2, j);                          \
        c22 = vdotq_laneq_s32(c22, w2, q2, j);                          \
        c23 = vdotq_laneq_s32(c23, w3, q2, j);                          \
        c30 = vdotq_laneq_s32(c30, w0, q3, j);                          \
        c31 = vdotq_laneq_s32(c31, w1, q3, j);                          \
        c32 = vdotq_laneq_s32(c32, w2, q3, j);                          \
        c33 = vdotq_laneq_s32(c33, w3, q3, j);                          \
    } while (0)
                EM_SDOT_GROUP(0);
                EM_SDOT_GROUP(1);
                EM_SDOT_GROUP(2);
                EM_SDOT_GROUP(3);
#undef EM_SDOT_GROUP
            }
            for (; k < g->K4; k += 4) {
                const int8_t *w = wp + (size_t)k * EM_NR;
                const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16), w2 = vld1q_s8(w + 32), w3 = vld1q_s8(w + 48);
                const int8x16_t x0 = em_dup4(a0 + k), x1 = em_dup4(a1 + k), x2 = em_dup4(a2 + k), x3 = em_dup4(a3 + k);
#define EM_SDOT_ROW(r, x)                          \
    c##r##0 = vdotq_s32(c##r##0, w0, x);           \
    c##r##1 = vdotq_s32(c##r##1, w1, x);           \
    c##r##2 = vdotq_s32(c##r##2, w2, x);           \
    c##r##3 = vdotq_s32(c##r##3, w3, x);
                EM_SDOT_ROW(0, x0)
                EM_SDOT_ROW(1, x1)
                EM_SDOT_ROW(2, x2)
                EM_SDOT_ROW(3, x3)
#undef EM_SDOT_ROW
            }
            EM_NEON_STORE4(g->rq, c0, n, rows, g->out + (size_t)m * g->ldo + c0, g->ldo);
        }
    }
}

/* Rows m0..m1 of the int8 im2col matrix (row m at dst + (m - m0) * k4): the input bytes as they are, the zero
 * point where the window leaves the image, zeros in the k4 tail. */
static void im2col_s8(const em_conv_args *a, int K, int k4, int m0, int m1, int8_t *dst) {
    const int8_t pad = (int8_t)(-a->in_offset);
    if (a->k_h == 1 && a->k_w == 1 && a->stride_h == 1 && a->stride_w == 1 && a->pad_top == 0 && a->pad_left == 0) {
        for (int m = m0; m < m1; m++) {
            int8_t *row = dst + (size_t)(m - m0) * k4;
            memcpy(row, a->in + (size_t)m * K, (size_t)K);
            if (k4 > K) memset(row + K, 0, (size_t)(k4 - K));
        }
        return;
    }
    const int run = a->k_w * a->in_c;
    em_conv_pos p = em_conv_pos_at(a, m0);
    for (int m = m0; m < m1; m++, em_conv_pos_next(a, &p)) {
        const int b = p.b, oy = p.oy, ox = p.ox;
        int8_t *row = dst + (size_t)(m - m0) * k4;
        int idx = 0;
        const int ix0 = ox * a->stride_w - a->pad_left;
        const int row_inside = a->dil_w == 1 && ix0 >= 0 && ix0 + a->k_w <= a->in_w;
        for (int kh = 0; kh < a->k_h; kh++) {
            const int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
            if (iy < 0 || iy >= a->in_h) {
                memset(row + idx, pad, (size_t)run);
                idx += run;
                continue;
            }
            const int8_t *line = a->in + ((size_t)b * a->in_h + iy) * a->in_w * a->in_c;
            if (row_inside) {
                memcpy(row + idx, line + (size_t)ix0 * a->in_c, (size_t)run);
                idx += run;
                continue;
            }
            for (int kw = 0; kw < a->k_w; kw++) {
                const int ix = ix0 + kw * a->dil_w;
                if (ix < 0 || ix >= a->in_w)
                    memset(row + idx, pad, (size_t)a->in_c);
                else
                    memcpy(row + idx, line + (size_t)ix * a->in_c, (size_t)a->in_c);
                idx += a->in_c;
            }
        }
        if (idx < k4) memset(row + idx, 0, (size_t)(k4 - idx));
    }
}

/* The int8 section of em_pack_weights' array (em_kernels.h, "VNNI GEMM paths"). */
static void int8_weights(const int16_t *packed, int N, int kp, const int32_t **colsum, const int8_t **w8) {
    const int nb = (N + EM_NR - 1) / EM_NR;
    *colsum = (const int32_t *)(packed + (size_t)nb * kp * EM_NR);
    *w8 = (const int8_t *)(*colsum + (size_t)nb * EM_NR);
}

/* The SDOT conv's part of the shared driver (conv_driver.h): K, k4 and the int8 weights' sections. */
typedef struct {
    int K, k4;
    const int32_t *colsum;
    const int8_t *w8;
} sdot_conv;

/* a chunk's int8 im2col rows, contiguous in this thread's scratch slice */
static void fill_im2col8(const em_conv_args *a, const void *ctx, int m0, int m1, void *buf, const void **rows) {
    const sdot_conv *s = (const sdot_conv *)ctx;
    /* the shape in a local copy, as im2col_rows_neon (conv.c) has it: under -fno-strict-aliasing every row's
     * memcpy into buf could otherwise change *a, and gcc reloaded its fields after each */
    const em_conv_args shape = *a;
    im2col_s8(&shape, s->K, s->k4, m0, m1, (int8_t *)buf);
    rows[0] = buf;
}

static void gemm_sdot_chunk(const em_conv_args *a, const void *ctx, const void *buf, const void *const *rows, int n,
                            int8_t *out) {
    const sdot_conv *s = (const sdot_conv *)ctx;
    (void)rows;
    const em_gemm8 g = {a->out_c, s->k4, (const int8_t *)buf, s->w8, s->colsum, a->bias, a->in_offset, &a->rq,
                        out, a->out_c};
    gemm_sdot(&g, 0, n);
}

/* Not inlined into em_conv2d_sdot: the driver's frame (a chunk's row pointers) would make every other path's
 * call of em_conv2d_sdot, which only checks the ISA, pay for it. */
__attribute__((noinline)) static void conv_sdot(const em_conv_args *a) {
    const int K = a->k_h * a->k_w * a->in_c;
    const int kp = em_conv_kp(a->k_h, a->k_w, a->in_c);
    sdot_conv s = {K, (K + 3) & ~3, NULL, NULL};
    int8_weights(a->w, a->out_c, kp, &s.colsum, &s.w8);
    /* each thread's slice of scratch is EM_CONV_ROWS rows of kp int16: as many rows of k4 <= 2 kp bytes */
    const em_conv_path p = {fill_im2col8, gemm_sdot_chunk, &s, (size_t)EM_CONV_ROWS * kp * sizeof(int16_t), 0, 0};
    em_conv_run(a, &p);
}

int em_conv2d_sdot(const em_conv_args *a) {
    if (em_isa_get() != EM_ISA_DOTPROD) return 0;
    conv_sdot(a);
    return 1;
}

int em_fully_connected_sdot(const em_fc_args *a) {
    if (em_isa_get() != EM_ISA_DOTPROD) return 0;
    const int K = a->in_features, kp = (K + 1) & ~1, k4 = (K + 3) & ~3;
    const int32_t *colsum;
    const int8_t *w8;
    int8_weights(a->w, a->units, kp, &colsum, &w8);
    int8_t *rows = (int8_t *)a->scratch; /* rows x kp int16 holds rows x k4 bytes */
    for (int r = 0; r < a->rows; r++) {
        memcpy(rows + (size_t)r * k4, a->in + (size_t)r * K, (size_t)K);
        if (k4 > K) memset(rows + (size_t)r * k4 + K, 0, (size_t)(k4 - K));
    }
    const em_gemm8 g = {a->units, k4, rows, w8, colsum, a->bias, a->in_offset, &a->rq, a->out, a->units};
    if (a->threads > 1 && a->rows >= 8) {
        const int chunks = (a->rows + 3) / 4;
#pragma omp parallel for num_threads(a->threads) schedule(static)
        for (int c = 0; c < chunks; c++) gemm_sdot(&g, c * 4, c * 4 + 4 < a->rows ? c * 4 + 4 : a->rows);
    } else {
        gemm_sdot(&g, 0, a->rows);
    }
    return 1;
}

/* ---- int8 GEMM on the neon path (no dot product), XNNPACK's qs8 "neon-mlal" scheme on the SDOT panels
 * [N/16][K4/4][16][4]: one 16-byte panel row holds 4 channels x 4 k.  smull multiplies its low half (2 channels x
 * 4 k) by a row's 4 activations (broadcast), smlal adds the next 4-k group's products into the same int16 lanes,
 * and sadalp adds adjacent lane pairs into int32: 16 multiply-adds per 3 instructions (the int16 smlal by
 * element does 4 per instruction).  An int16 lane holds two products x w with x in [-128, 127] (the input as
 * it is: the in_offset term is the column sums', as on the SDOT path) and w in [-127, 127]: at most
 * 2 x 128 x 127 = 32512, no overflow.  TFLite's int8 weights are symmetric in [-127, 127], but nothing stops a
 * model from holding -128 (2 x 128 x 128 = 32768 wraps), so em_pack_weights records whether any weight is -128
 * and such a layer stays on the int16 path.  Accumulators are int32 lanes (channel c, k pairs 01 / 23); the
 * tile's end adds each channel's two (addp) and the bias + in_offset x column sum. */

/* acc (channels 4j, 4j + 1) and acc_h (4j + 2, 4j + 3) += one 4-k group of a row (a run's 8 k + 4 tail): one
 * product per int16 lane */
#define EM_S8_MAC1(acc, acc_h, wa, xa)                                                                                 \
    do {                                                                                                               \
        acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(wa), vget_low_s8(xa)));                                            \
        acc_h = vpadalq_s16(acc_h, vmull_high_s8(wa, xa));                                                             \
    } while (0)

/* One 8-k step of the tile (groups g, g + 1) in assembly: with intrinsics gcc 12 spilled an accumulator and
 * recomputed addresses (63 instructions a step, this is 58: 4 ld1r, 4 ldp, 48 multiply / add, the loop's 2).
 * Two statements (an asm has at most 30 operands): the first loads the rows' broadcast activations and the
 * panels and does channels 0-7, the second channels 8-15.  v16, v17 / v22, v23: panels of groups g / g + 1
 * for the statement's channels, v18-v21: the int16 products; the accumulators, the activations and group g's
 * panels for channels 8-15 are the compiler's registers.  w, p0, p1 step past what they read. */
#define EM_S8_J(op, wa, wb, c0, c1, d0, d1)                                                                            \
    "smull  v18.8h, " wa ".8b, %[x0a].8b\n\t"                                                                          \
    "smull2 v19.8h, " wa ".16b, %[x0a].16b\n\t"                                                                        \
    "smull  v20.8h, " wa ".8b, %[x1a].8b\n\t"                                                                          \
    "smull2 v21.8h, " wa ".16b, %[x1a].16b\n\t"                                                                        \
    "smlal  v18.8h, " wb ".8b, %[x0b].8b\n\t"                                                                          \
    "smlal2 v19.8h, " wb ".16b, %[x0b].16b\n\t"                                                                        \
    "smlal  v20.8h, " wb ".8b, %[x1b].8b\n\t"                                                                          \
    "smlal2 v21.8h, " wb ".16b, %[x1b].16b\n\t"                                                                        \
    op " %[" c0 "].4s, v18.8h\n\t"                                                                                     \
    op " %[" c1 "].4s, v19.8h\n\t"                                                                                     \
    op " %[" d0 "].4s, v20.8h\n\t"                                                                                     \
    op " %[" d1 "].4s, v21.8h\n\t"
#define EM_S8_CLOBBERS "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23"
#define EM_S8_STEP8_OP(op, acc, w, p0, p1)                                                                             \
    do {                                                                                                               \
        int8x16_t x0a, x0b, x1a, x1b, wa2, wa3;                                                                        \
        __asm__("ld1r {%[x0a].4s}, [%[p0]], #4\n\t"                                                                    \
                "ld1r {%[x0b].4s}, [%[p0]], #4\n\t"                                                                    \
                "ld1r {%[x1a].4s}, [%[p1]], #4\n\t"                                                                    \
                "ld1r {%[x1b].4s}, [%[p1]], #4\n\t"                                                                    \
                "ldp q16, q17, [%[w]], #32\n\t"                                                                        \
                "ldp %q[wa2], %q[wa3], [%[w]], #32\n\t"                                                                \
                "ldp q22, q23, [%[w]], #32\n\t"                                                                        \
                EM_S8_J(op, "v16", "v22", "a00", "a01", "a10", "a11")                                                  \
                EM_S8_J(op, "v17", "v23", "a02", "a03", "a12", "a13")                                                  \
                : [w] "+r"(w), [p0] "+r"(p0), [p1] "+r"(p1), [x0a] "=&w"(x0a), [x0b] "=&w"(x0b),                       \
                  [x1a] "=&w"(x1a), [x1b] "=&w"(x1b), [wa2] "=&w"(wa2), [wa3] "=&w"(wa3), [a00] acc(a00),              \
                  [a01] acc(a01), [a02] acc(a02), [a03] acc(a03), [a10] acc(a10), [a11] acc(a11),                      \
                  [a12] acc(a12), [a13] acc(a13)                                                                       \
                :                                                                                                      \
                : "memory", EM_S8_CLOBBERS);                                                                           \
        __asm__("ldp q22, q23, [%[w]], #32\n\t"                                                                        \
                EM_S8_J(op, "%[wa2]", "v22", "a04", "a05", "a14", "a15")                                               \
                EM_S8_J(op, "%[wa3]", "v23", "a06", "a07", "a16", "a17")                                               \
                : [w] "+r"(w), [a04] acc(a04), [a05] acc(a05), [a06] acc(a06), [a07] acc(a07),                         \
                  [a14] acc(a14), [a15] acc(a15), [a16] acc(a16), [a17] acc(a17)                                       \
                : [x0a] "w"(x0a), [x0b] "w"(x0b), [x1a] "w"(x1a), [x1b] "w"(x1b), [wa2] "w"(wa2),                      \
                  [wa3] "w"(wa3)                                                                                       \
                : "memory", EM_S8_CLOBBERS);                                                                           \
    } while (0)
/* the first step sets the accumulators (saddlp: no zeroing), the others add to them (sadalp) */
#define EM_S8_ACC_SET(v) "=&w"(v)
#define EM_S8_ACC_ADD(v) "+w"(v)
#define EM_S8_FIRST8(w, p0, p1) EM_S8_STEP8_OP("saddlp", EM_S8_ACC_SET, w, p0, p1)
#define EM_S8_STEP8(w, p0, p1) EM_S8_STEP8_OP("sadalp", EM_S8_ACC_ADD, w, p0, p1)

#if defined(__GNUC__) && !defined(__clang__)
#define EM_TILE8_ATTRS __attribute__((noinline, optimize("no-schedule-insns")))
#else
#define EM_TILE8_ATTRS __attribute__((noinline)) /* clang has no optimize attribute */
#endif

/* 2 rows x 16 channels: pix[2 t], pix[2 t + 1] are the rows' `run` bytes (a multiple of 4) for run t of `runs`;
 * w: the channel block's panels from k = 0 on.  cnt (1 or 2) rows are stored at o, o + ldo.  Not inlined (the
 * 16 accumulators, the activations and panels fill the register file as it is), and no pre-RA scheduling: with
 * it gcc hoisted loads and products and spilled accumulators. */
EM_TILE8_ATTRS static void
tile8_neon(const int8_t *const *pix, int runs, int run, const int8_t *w, const int32_t *bias, const int32_t *colsum,
           int32_t off, const em_requant *rq, int c0, int n, int cnt, int8_t *o, int ldo) {
    int32x4_t a00, a01, a02, a03, a04, a05, a06, a07; /* row 0: channels 4j, 4j + 1 (h = 0), 4j + 2, 4j + 3 */
    int32x4_t a10, a11, a12, a13, a14, a15, a16, a17; /* row 1 */
    const int steps = run >> 3;
    if (run & 4) { /* a 4-k group after the 8-k steps */
        a00 = a01 = a02 = a03 = a04 = a05 = a06 = a07 = vdupq_n_s32(0);
        a10 = a11 = a12 = a13 = a14 = a15 = a16 = a17 = a00;
#pragma GCC unroll 1
        for (int t = 0; t < runs; t++) {
            const int8_t *p0 = pix[2 * t], *p1 = pix[2 * t + 1];
#pragma GCC unroll 1
            for (unsigned i = (unsigned)steps; i != 0; i--) EM_S8_STEP8(w, p0, p1);
            const int8x16x4_t wa = vld1q_s8_x4(w);
            const int8x16_t x0a = em_dup4(p0), x1a = em_dup4(p1);
            w += 64;
            EM_S8_MAC1(a00, a01, wa.val[0], x0a);
            EM_S8_MAC1(a10, a11, wa.val[0], x1a);
            EM_S8_MAC1(a02, a03, wa.val[1], x0a);
            EM_S8_MAC1(a12, a13, wa.val[1], x1a);
            EM_S8_MAC1(a04, a05, wa.val[2], x0a);
            EM_S8_MAC1(a14, a15, wa.val[2], x1a);
            EM_S8_MAC1(a06, a07, wa.val[3], x0a);
            EM_S8_MAC1(a16, a17, wa.val[3], x1a);
        }
    } else { /* whole 8-k steps only, at least one (run > 0): no checks per tap */
        const int8_t *p0 = pix[0], *p1 = pix[1];
        EM_S8_FIRST8(w, p0, p1);
#pragma GCC unroll 1
        for (unsigned i = (unsigned)steps - 1; i != 0; i--) EM_S8_STEP8(w, p0, p1); /* unsigned: subs + bne */
#pragma GCC unroll 1
        for (int t = 1; t < runs; t++) {
            p0 = pix[2 * t];
            p1 = pix[2 * t + 1];
            unsigned i = (unsigned)steps;
            do EM_S8_STEP8(w, p0, p1);
            while (--i != 0);
        }
    }
    const int32x4_t vo = vdupq_n_s32(off);
    const int32x4_t b0 = vmlaq_s32(vld1q_s32(bias + c0), vo, vld1q_s32(colsum + c0));
    const int32x4_t b1 = vmlaq_s32(vld1q_s32(bias + c0 + 4), vo, vld1q_s32(colsum + c0 + 4));
    const int32x4_t b2 = vmlaq_s32(vld1q_s32(bias + c0 + 8), vo, vld1q_s32(colsum + c0 + 8));
    const int32x4_t b3 = vmlaq_s32(vld1q_s32(bias + c0 + 12), vo, vld1q_s32(colsum + c0 + 12));
    em_requant16_neon(vaddq_s32(vpaddq_s32(a00, a01), b0), vaddq_s32(vpaddq_s32(a02, a03), b1),
                      vaddq_s32(vpaddq_s32(a04, a05), b2), vaddq_s32(vpaddq_s32(a06, a07), b3), rq, c0, n, o);
    if (cnt > 1)
        em_requant16_neon(vaddq_s32(vpaddq_s32(a10, a11), b0), vaddq_s32(vpaddq_s32(a12, a13), b1),
                          vaddq_s32(vpaddq_s32(a14, a15), b2), vaddq_s32(vpaddq_s32(a16, a17), b3), rq, c0, n,
                          o + ldo);
}

/* Whether em_pack_weights found no -128 among the weights (the int32 after the int8 panels, gemm.c). */
static int neon8_weights(const int16_t *packed, int N, int kp, int k4, const int32_t **colsum, const int8_t **w8) {
    int32_t ok;
    int8_weights(packed, N, kp, colsum, w8);
    memcpy(&ok, *w8 + (size_t)((N + EM_NR - 1) / EM_NR) * k4 * EM_NR, sizeof ok);
    return ok == 1;
}

/* rows m0..m1 of the int8 operand (row m at rows[m - m0], k4 bytes) -> the output rows, every channel block */
static void gemm8_neon(const em_gemm8 *g, const int8_t *const *rows, int n, int8_t *out, int ldo) {
    for (int m = 0; m < n; m += 2) {
        const int cnt = n - m < 2 ? 1 : 2;
        const int8_t *pix[2] = {rows[m], rows[m + cnt - 1]}; /* a lone last row twice; its copy is dropped */
        for (int c0 = 0; c0 < g->N; c0 += EM_NR)
            tile8_neon(pix, 1, g->K4, g->w + (size_t)c0 * g->K4, g->bias, g->colsum, g->off, g->rq, c0,
                       g->N - c0 < EM_NR ? g->N - c0 : EM_NR, cnt, out + (size_t)m * ldo + c0, ldo);
    }
}

/* the im2col conv (in_c not whole 4-byte groups): the SDOT path's int8 im2col rows through gemm8_neon */
static void gemm8_neon_chunk(const em_conv_args *a, const void *ctx, const void *buf, const void *const *rows, int n,
                             int8_t *out) {
    const sdot_conv *s = (const sdot_conv *)ctx;
    const int8_t *r[EM_CONV_ROWS];
    (void)rows;
    for (int i = 0; i < n; i++) r[i] = (const int8_t *)buf + (size_t)i * s->k4;
    const em_gemm8 g = {a->out_c, s->k4, (const int8_t *)buf, s->w8, s->colsum, a->bias, a->in_offset, &a->rq,
                        out, a->out_c};
    gemm8_neon(&g, r, n, out, a->out_c);
}

/* The direct conv (in_c a multiple of 4, so every tap is whole 4-byte groups of the panels): an output row's 2
 * pixels x 16 channels per tile, each tap read where it lies in the input (no im2col), taps outside the image
 * from a run of the zero point (x + in_offset = 0). */
static void conv_direct8_neon(const em_conv_args *args, const int8_t *w8, const int32_t *colsum) {
    /* the shape in a local copy: under -fno-strict-aliasing each store into pix[] could change *args, and gcc
     * reloaded its fields after each */
    const em_conv_args shape = *args, *a = &shape;
    const int rows = a->batch * a->out_h, C = a->in_c, N = a->out_c, taps = a->k_h * a->k_w, K = taps * C;
    const int in_w = a->in_w, sw = a->stride_w;
    int8_t *pad = (int8_t *)a->scratch; /* C bytes of the zero point, shared read-only by the threads */
    memset(pad, (int8_t)(-a->in_offset), (size_t)C);
    ptrdiff_t toff[EM_DIRECT_MAX_TAPS]; /* a tap's offset from its window's top-left pixel, inside the image */
    for (int kh = 0; kh < a->k_h; kh++)
        for (int kw = 0; kw < a->k_w; kw++)
            toff[kh * a->k_w + kw] = ((ptrdiff_t)kh * a->dil_h * in_w + (ptrdiff_t)kw * a->dil_w) * C;
    const em_direct_span cols = em_direct_interior(a);
#pragma omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)
    for (int r = 0; r < rows; r++) {
        const int b = r / a->out_h, oy = r % a->out_h;
        const int8_t *line[EM_DIRECT_MAX_KH];
        int rows_inside = 1;
        for (int kh = 0; kh < a->k_h; kh++) {
            const int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
            line[kh] = iy >= 0 && iy < a->in_h ? a->in + ((size_t)b * a->in_h + iy) * in_w * C : NULL;
            rows_inside &= line[kh] != NULL;
        }
        int8_t *orow = a->out + (size_t)r * a->out_w * N;
        for (int ox = 0; ox < a->out_w; ox += 2) {
            const int cnt = a->out_w - ox < 2 ? a->out_w - ox : 2; /* a lone last pixel rereads itself */
            const int8_t *pix[2 * EM_DIRECT_MAX_TAPS];
            if (rows_inside && cnt == 2 && ox >= cols.lo && ox + 2 <= cols.hi) { /* every tap inside: no checks */
                const int8_t *p0 = line[0] + (ptrdiff_t)(ox * sw - a->pad_left) * C, *p1 = p0 + (ptrdiff_t)sw * C;
                for (int t = 0; t < taps; t++) {
                    pix[2 * t] = p0 + toff[t];
                    pix[2 * t + 1] = p1 + toff[t];
                }
            } else {
                for (int kh = 0; kh < a->k_h; kh++)
                    for (int kw = 0; kw < a->k_w; kw++)
                        for (int i = 0; i < 2; i++) {
                            const int ix = (ox + (i < cnt ? i : 0)) * sw - a->pad_left + kw * a->dil_w;
                            pix[2 * (kh * a->k_w + kw) + i] =
                                line[kh] && ix >= 0 && ix < in_w ? line[kh] + (size_t)ix * C : pad;
                        }
            }
            for (int c0 = 0; c0 < N; c0 += EM_NR)
                tile8_neon(pix, taps, C, w8 + (size_t)c0 * K, a->bias, colsum, a->in_offset, &a->rq, c0,
                           N - c0 < EM_NR ? N - c0 : EM_NR, cnt, orow + (size_t)ox * N + c0, N);
        }
    }
}

/* CONV_2D on the neon int8 GEMM: 1 when it ran the op (no weight is -128), else 0 having done nothing. */
static int conv_neon8(const em_conv_args *a) {
    const int K = a->k_h * a->k_w * a->in_c, k4 = (K + 3) & ~3;
    const int kp = em_conv_kp(a->k_h, a->k_w, a->in_c);
    sdot_conv s = {K, k4, NULL, NULL};
    if (!neon8_weights(a->w, a->out_c, kp, k4, &s.colsum, &s.w8)) return 0;
    if (a->in_c % 4 == 0 && a->k_h * a->k_w <= EM_DIRECT_MAX_TAPS && a->k_h <= EM_DIRECT_MAX_KH) {
        conv_direct8_neon(a, s.w8, s.colsum);
        return 1;
    }
    const em_conv_path p = {fill_im2col8, gemm8_neon_chunk, &s, (size_t)EM_CONV_ROWS * kp * sizeof(int16_t), 0, 0};
    em_conv_run(a, &p);
    return 1;
}

#endif
