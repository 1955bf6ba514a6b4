/* Row requantization, portable, AVX2 and NEON.  Internal to the kernels. */
#ifndef EDGE_MAAS_REQUANT_H
#define EDGE_MAAS_REQUANT_H
#include "em_kernels.h"
#include "fixedpoint.h"

/* acc[i] for channels c0..c0+n of a row; rq arrays are indexed by channel. */
static inline void em_requant_row_portable(const int32_t *acc, int n, const em_requant *rq, int c0, int8_t *out) {
    for (int i = 0; i < n; i++) {
        int32_t m = rq->mult[c0 + i], s = rq->shift[c0 + i], v;
        if (c0 + i < rq->round_up_below)
            v = em_multiply_by_quantized_multiplier_up(acc[i], m, s);
        else
            v = em_multiply_by_quantized_multiplier(acc[i], m, s);
        out[i] = em_clamp_i8(v + rq->zp, rq->act_min, rq->act_max);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EM_HAVE_AVX2 1
#include <immintrin.h>
#define EM_AVX2 __attribute__((target("avx2")))
/* the AVX-512 paths of the small ops (the conv / depthwise VNNI files name their own, wider targets) */
#define EM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2")))

/* MultiplyByQuantizedMultiplier on 8 lanes, per-lane multiplier (> 0) and shift.
 * gemmlowp's SRDHM, (ab + nudge) / 2^31 truncated toward zero with nudge
 * 2^30 or 1 - 2^30 by sign, equals floor((ab + 2^30) / 2^31) for every ab
 * (ceil(n/d) = floor((n + d - 1)/d)), and the bits we keep of that floor are
 * bits 31..62 of the 64-bit sum, which a logical shift delivers. */
static inline EM_AVX2 __m256i em_mbqm_avx2(__m256i x, __m256i mult, __m256i shift, int c0, int round_up_below) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i half = _mm256_set1_epi64x(1LL << 30);
    __m256i left = _mm256_max_epi32(shift, zero);
    __m256i right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
    x = _mm256_sllv_epi32(x, left);
    __m256i p_even = _mm256_add_epi64(_mm256_mul_epi32(x, mult), half);
    __m256i p_odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(mult, 32)), half);
    __m256i hm = _mm256_blend_epi32(_mm256_srli_epi64(p_even, 31), _mm256_slli_epi64(p_odd, 1), 0xAA);
    __m256i res = _mm256_srav_epi32(hm, right);
    __m256i up = zero, away = zero;
    if (c0 < round_up_below) {
        /* floor((hm + 2^(right-1)) / 2^right) = (hm >> right) + bit (right-1) of hm, without overflow */
        __m256i bit = _mm256_srav_epi32(hm, _mm256_max_epi32(_mm256_sub_epi32(right, one), zero));
        up = _mm256_add_epi32(res, _mm256_and_si256(bit, _mm256_min_epi32(right, one)));
        if (c0 + 8 <= round_up_below) return up;
    }
    /* RoundingDivideByPOT(hm, right): ties away from zero */
    __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
    __m256i rem = _mm256_and_si256(hm, mask);
    __m256i thr = _mm256_sub_epi32(_mm256_srai_epi32(mask, 1), _mm256_srai_epi32(hm, 31));
    away = _mm256_sub_epi32(res, _mm256_cmpgt_epi32(rem, thr));
    if (c0 >= round_up_below) return away;
    __m256i lane = _mm256_add_epi32(_mm256_set1_epi32(c0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i is_up = _mm256_cmpgt_epi32(_mm256_set1_epi32(round_up_below), lane);
    return _mm256_blendv_epi8(away, up, is_up);
}

/* 16 accumulators (channels c0..c0+15) -> 16 int8, n <= 16 of them stored. */
static inline EM_AVX2 void em_requant16_avx2(__m256i a0, __m256i a1, const em_requant *rq, int c0, int n, int8_t *out) {
    __m256i r0 = em_mbqm_avx2(a0, _mm256_loadu_si256((const __m256i *)(rq->mult + c0)),
                              _mm256_loadu_si256((const __m256i *)(rq->shift + c0)), c0, rq->round_up_below);
    __m256i r1 = em_mbqm_avx2(a1, _mm256_loadu_si256((const __m256i *)(rq->mult + c0 + 8)),
                              _mm256_loadu_si256((const __m256i *)(rq->shift + c0 + 8)), c0 + 8,
                              rq->round_up_below);
    /* int32 -> int16 saturating; adding zp and clamping in int16 is exact since
     * the int8 clamp bounds lie well inside the int16 range. */
    __m256i s = _mm256_permute4x64_epi64(_mm256_packs_epi32(r0, r1), 0xD8);
    s = _mm256_adds_epi16(s, _mm256_set1_epi16((short)rq->zp));
    s = _mm256_max_epi16(s, _mm256_set1_epi16((short)rq->act_min));
    s = _mm256_min_epi16(s, _mm256_set1_epi16((short)rq->act_max));
    __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    if (n == 16) {
        _mm_storeu_si128((__m128i *)out, b);
    } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, b);
        for (int i = 0; i < n; i++) out[i] = tmp[i];
    }
}

/* A row of n accumulators; rq arrays must be readable up to a multiple of 16. */
static inline EM_AVX2 void em_requant_row_avx2(const int32_t *acc, int n, const em_requant *rq, int c0, int8_t *out) {
    int i = 0;
    for (; i + 16 <= n; i += 16)
        em_requant16_avx2(_mm256_loadu_si256((const __m256i *)(acc + i)),
                          _mm256_loadu_si256((const __m256i *)(acc + i + 8)), rq, c0 + i, 16, out + i);
    if (i < n) {
        int32_t tmp[16] = {0};
        for (int j = 0; j < n - i; j++) tmp[j] = acc[i + j];
        em_requant16_avx2(_mm256_loadu_si256((const __m256i *)tmp), _mm256_loadu_si256((const __m256i *)(tmp + 8)),
                          rq, c0 + i, n - i, out + i);
    }
}
#endif

#ifdef EM_HAVE_NEON
#include <arm_neon.h>

/* MultiplyByQuantizedMultiplier on 4 lanes, per-lane multiplier (> 0) and shift: the same double rounding as
 * the portable path.  vqrdmulhq_s32 is gemmlowp's SaturatingRoundingDoublingHighMul exactly ((2ab + 2^31) >> 32
 * = floor((ab + 2^30) / 2^31), saturating the one INT32_MIN^2 case).  vrshlq_s32 by -right rounds ties up,
 * floor((hm + 2^(right-1)) / 2^right) computed without overflow: ruy's rounding (channels < round_up_below).
 * RoundingDivideByPOT rounds ties away from zero: subtract 1 from negative hm first (TFLite's optimized NEON
 * fixup; hm & -right keeps hm's sign bit only when right > 0; saturating, INT32_MIN stays put and INT32_MIN >>
 * right is right either way), then floor((hm - 1 + 2^(r-1)) / 2^r) = floor(hm / 2^r) + (rem > 2^(r-1)),
 * which is gemmlowp's threshold test for negative hm. */
static inline int32x4_t em_mbqm_neon(int32x4_t x, int32x4_t mult, int32x4_t shift, int c0, int round_up_below) {
    const int32x4_t zero = vdupq_n_s32(0);
    const int32x4_t left = vmaxq_s32(shift, zero);
    const int32x4_t neg_right = vminq_s32(shift, zero);
    /* SSHL by a non-negative amount: a plain (wrapping) left shift, as (uint32_t)x << left */
    const int32x4_t hm = vqrdmulhq_s32(vshlq_s32(x, left), mult);
    int32x4_t up = zero;
    if (c0 < round_up_below) {
        up = vrshlq_s32(hm, neg_right);
        if (c0 + 4 <= round_up_below) return up;
    }
    const int32x4_t fixup = vshrq_n_s32(vandq_s32(hm, neg_right), 31);
    const int32x4_t away = vrshlq_s32(vqaddq_s32(hm, fixup), neg_right);
    if (c0 >= round_up_below) return away;
    static const int32_t lanes[4] = {0, 1, 2, 3};
    const uint32x4_t is_up = vcltq_s32(vaddq_s32(vdupq_n_s32(c0), vld1q_s32(lanes)), vdupq_n_s32(round_up_below));
    return vbslq_s32(is_up, up, away);
}

/* 16 accumulators (channels c0..c0+15) -> 16 int8, n <= 16 of them stored.  int32 -> int16 saturating, then
 * zp and the clamp in int16: exact, the int8 clamp bounds lie well inside the int16 range (as AVX2). */
static inline void em_requant16_neon(int32x4_t a0, int32x4_t a1, int32x4_t a2, int32x4_t a3, const em_requant *rq,
                                     int c0, int n, int8_t *out) {
    const int32_t *m = rq->mult + c0, *sh = rq->shift + c0;
    const int r = rq->round_up_below;
    int32x4_t r0 = em_mbqm_neon(a0, vld1q_s32(m), vld1q_s32(sh), c0, r);
    int32x4_t r1 = em_mbqm_neon(a1, vld1q_s32(m + 4), vld1q_s32(sh + 4), c0 + 4, r);
    int32x4_t r2 = em_mbqm_neon(a2, vld1q_s32(m + 8), vld1q_s32(sh + 8), c0 + 8, r);
    int32x4_t r3 = em_mbqm_neon(a3, vld1q_s32(m + 12), vld1q_s32(sh + 12), c0 + 12, r);
    const int16x8_t zp = vdupq_n_s16((int16_t)rq->zp);
    const int16x8_t lo = vdupq_n_s16((int16_t)rq->act_min), hi = vdupq_n_s16((int16_t)rq->act_max);
    int16x8_t s0 = vqaddq_s16(vcombine_s16(vqmovn_s32(r0), vqmovn_s32(r1)), zp);
    int16x8_t s1 = vqaddq_s16(vcombine_s16(vqmovn_s32(r2), vqmovn_s32(r3)), zp);
    s0 = vminq_s16(vmaxq_s16(s0, lo), hi);
    s1 = vminq_s16(vmaxq_s16(s1, lo), hi);
    const int8x16_t b = vcombine_s8(vqmovn_s16(s0), vqmovn_s16(s1));
    if (n == 16) {
        vst1q_s8(out, b);
    } else {
        int8_t tmp[16];
        vst1q_s8(tmp, b);
        for (int i = 0; i < n; i++) out[i] = tmp[i];
    }
}

/* A row of n accumulators; rq arrays must be readable up to a multiple of 16. */
static inline void em_requant_row_neon(const int32_t *acc, int n, const em_requant *rq, int c0, int8_t *out) {
    int i = 0;
    for (; i + 16 <= n; i += 16)
        em_requant16_neon(vld1q_s32(acc + i), vld1q_s32(acc + i + 4), vld1q_s32(acc + i + 8),
                          vld1q_s32(acc + i + 12), rq, c0 + i, 16, out + i);
    if (i < n) {
        int32_t tmp[16] = {0};
        for (int j = 0; j < n - i; j++) tmp[j] = acc[i + j];
        em_requant16_neon(vld1q_s32(tmp), vld1q_s32(tmp + 4), vld1q_s32(tmp + 8), vld1q_s32(tmp + 12), rq, c0 + i,
                          n - i, out + i);
    }
}
#endif

#endif
