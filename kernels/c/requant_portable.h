/* The portable paths' vectorizable output stage: one channel over many rows (GEMM rows, depthwise pixels), where
 * the channel's multiplier, shifts and rounding are loop constants.  Plain C, no intrinsics, no platform
 * dependence: gcc vectorizes it with SSE2 alone.  Internal to the kernels. */
#ifndef EDGE_MAAS_REQUANT_PORTABLE_H
#define EDGE_MAAS_REQUANT_PORTABLE_H
#include "requant.h"

#define EM_RQ_COLUMN_MAX 64 /* most rows per em_requant_column_portable call */

/* SaturatingRoundingDoublingHighMul's floor((x * m + 2^30) / 2^31) for a multiplier 0 <= m < 2^31 (every
 * quantized multiplier), in 32-bit lanes only: SSE2 has no signed 32x32->64 multiply and gcc vectorizes no
 * 64-bit arithmetic there, but it does vectorize this.  With u = x + 2^31 (unsigned, so x * m = u * m - 2^31 m)
 * and 16-bit halves u = uh 2^16 + ul, m = mh 2^16 + ml, the quotient is 2 uh mh + 2 (hi16(uh ml) + hi16(ul mh))
 * + (lo16(uh ml) + lo16(ul mh) + hi16(ul ml) + 2^14) / 2^15 (the bits below 2^16 never carry past 2^31), minus
 * m; computed mod 2^32, and the true value fits in int32.  Checked against the int64 form on 5e7 random pairs
 * and the edge values (INT32_MIN, INT32_MAX, m = 0, 2^30, 2^31 - 1). */
static inline int32_t em_high_mul_limbs(int32_t x, uint32_t m) {
    const uint32_t u = (uint32_t)x ^ 0x80000000u;
    const uint32_t uh = u >> 16, ul = u & 0xffff, mh = m >> 16, ml = m & 0xffff;
    const uint32_t a = uh * mh, b1 = uh * ml, b2 = ul * mh, c = ul * ml;
    const uint32_t t = (b1 & 0xffff) + (b2 & 0xffff) + (c >> 16) + (1u << 14);
    return (int32_t)(2 * a + 2 * ((b1 >> 16) + (b2 >> 16)) + (t >> 15) - m);
}

/* One channel's output stage over n <= EM_RQ_COLUMN_MAX rows, out[r * ldo]: em_requant_row_portable's values (fixedpoint.h), but
 * with the channel's multiplier, shifts and rounding fixed for the whole loop (uniform shift counts), in 32-bit
 * lanes, into int32, so the compiler vectorizes it; per-row, per-channel scalar requantization cost more than
 * the sums on small k.  A negative multiplier (none is: QuantizeMultiplier gives 0 or [2^30, 2^31)) would
 * leave em_high_mul_limbs' range and takes the scalar path, the saturating INT32_MIN case included. */
static inline void em_requant_column_portable(const int32_t *restrict acc, int n, const em_requant *rq, int c,
                                              int8_t *restrict out, int ldo) {
    const int32_t m = rq->mult[c], s = rq->shift[c];
    if (m < 0) {
        for (int r = 0; r < n; r++) em_requant_row_portable(acc + r, 1, rq, c, out + (size_t)r * ldo);
        return;
    }
    const int left = s > 0 ? s : 0, right = s > 0 ? 0 : -s;
    const int32_t mask = (int32_t)((1LL << right) - 1), half = mask >> 1;
    const int32_t zp = rq->zp, lo = rq->act_min, hi = rq->act_max;
    int32_t q[EM_RQ_COLUMN_MAX];
    if (c < rq->round_up_below) { /* ties up: (hm + 2^(right-1)) >> right without overflow */
        const int rb = right > 0 ? right - 1 : 0, ro = right > 0;
        for (int r = 0; r < n; r++) {
            const int32_t hm = em_high_mul_limbs((int32_t)((uint32_t)acc[r] << left), (uint32_t)m);
            const int32_t v = (hm >> right) + ((hm >> rb) & ro) + zp;
            q[r] = v < lo ? lo : (v > hi ? hi : v);
        }
    } else { /* RoundingDivideByPOT: ties away from zero */
        for (int r = 0; r < n; r++) {
            const int32_t hm = em_high_mul_limbs((int32_t)((uint32_t)acc[r] << left), (uint32_t)m);
            const int32_t v = (hm >> right) + ((hm & mask) > half + (hm < 0)) + zp;
            q[r] = v < lo ? lo : (v > hi ? hi : v);
        }
    }
    for (int r = 0; r < n; r++) out[(size_t)r * ldo] = (int8_t)q[r];
}

#endif
