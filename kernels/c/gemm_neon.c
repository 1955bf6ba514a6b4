/* NEON path of the int16 GEMM (CONV_2D via im2col, FULLY_CONNECTED) and of the operand widening, on the
 * panels gemm.c packs: [N/16][Kp/2][16 lanes][2] int16.  One ld2 per half panel splits each k pair into the
 * even-k and odd-k weights of 8 channels; smlal / smlal2 by element multiply them by one activation of a row
 * and add to int32 lanes.  A tile is 4 rows x 16 channels: 16 accumulators, 4 weight vectors and 4 activation
 * pairs, 24 of the 32 vector registers.  Sums are exact int32 (|a| <= 255, |w| <= 127, as on every path), so
 * the bytes are the portable path's whatever the order; the output stage is requant.h's NEON requantization. */
#include "requant.h"

#ifdef EM_HAVE_NEON

/* acc[0..3] (channels 0..15) += a[0] * w(even k) + a[1] * w(odd k) for one k pair; av holds a[0], a[1], a[0], a[1] */
#define EM_NEON_MAC_ROW(c, av)                                                   \
    do {                                                                        \
        c[0] = vmlal_lane_s16(c[0], vget_low_s16(w0.val[0]), av, 0);            \
        c[0] = vmlal_lane_s16(c[0], vget_low_s16(w0.val[1]), av, 1);            \
        c[1] = vmlal_high_lane_s16(c[1], w0.val[0], av, 0);                     \
        c[1] = vmlal_high_lane_s16(c[1], w0.val[1], av, 1);                     \
        c[2] = vmlal_lane_s16(c[2], vget_low_s16(w1.val[0]), av, 0);            \
        c[2] = vmlal_lane_s16(c[2], vget_low_s16(w1.val[1]), av, 1);            \
        c[3] = vmlal_high_lane_s16(c[3], w1.val[0], av, 0);                     \
        c[3] = vmlal_high_lane_s16(c[3], w1.val[1], av, 1);                     \
    } while (0)

static inline int16x4_t em_pair(const int16_t *a) {
    int32_t v;
    __builtin_memcpy(&v, a, sizeof v); /* the rows are int16 pairs; no alignment assumed */
    return vreinterpret_s16_s32(vdup_n_s32(v));
}

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
            int32x4_t c[4][4] = {{b0, b1, b2, b3}, {b0, b1, b2, b3}, {b0, b1, b2, b3}, {b0, b1, b2, b3}};
            for (int k = 0; k < k2; k++) {
                const int16x8x2_t w0 = vld2q_s16(wb + (size_t)k * 32);
                const int16x8x2_t w1 = vld2q_s16(wb + (size_t)k * 32 + 16);
                const int16x4_t x0 = em_pair(a0 + 2 * k), x1 = em_pair(a1 + 2 * k);
                const int16x4_t x2 = em_pair(a2 + 2 * k), x3 = em_pair(a3 + 2 * k);
                EM_NEON_MAC_ROW(c[0], x0);
                EM_NEON_MAC_ROW(c[1], x1);
                EM_NEON_MAC_ROW(c[2], x2);
                EM_NEON_MAC_ROW(c[3], x3);
            }
            for (int r = 0; r < rows; r++)
                em_requant16_neon(c[r][0], c[r][1], c[r][2], c[r][3], &g->rq, c0, n,
                                  g->out + (size_t)(m + r) * g->ldo + c0);
        }
    }
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

#endif
