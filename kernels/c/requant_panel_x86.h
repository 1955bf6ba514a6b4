/* The x86 GEMMs' output stage for a 16-channel panel, prepared once per panel: where every lane rounds ties up
 * (ruy: conv, FC) and shifts right, MultiplyByQuantizedMultiplier in one step on 64-bit lanes; else
 * em_requant16_avx2 (requant.h).  Same values lane for lane.  Used by gemm.c (int16 AVX2 GEMM), conv.c (direct
 * AVX2 conv) and gemm_vnni.c (AVX-VNNI); internal to the kernels, x86 builds only. */
#ifndef EDGE_MAAS_REQUANT_PANEL_X86_H
#define EDGE_MAAS_REQUANT_PANEL_X86_H
#include <string.h>
#include "requant.h"
#ifdef EM_HAVE_AVX2

/* MultiplyByQuantizedMultiplier, ties up, on 8 lanes without a left shift, as store512's one-step form
 * floor((x M + 2^30 + [r > 0] 2^(30+r)) / 2^(31+r)), but AVX2 has no 64-bit arithmetic shift: 2^62 is added first
 * (|x M + ...| < 2^62 + 2^61, so the sum is positive and below 2^64) and the logical shift's result is short by
 * nothing but 2^(62-31-r) = 2^(31-r), subtracted in 32 bits (wrapping for r = 0, where the true value fits). */
typedef struct {
    __m256i mult, mult_odd, round_even, round_odd, shift_even, shift_odd, post;
    /* where every lane shifts right by r >= 1 (rq256_panel.fold): the odd lanes shifted by 31 + r - 32, which
     * leaves their result in the high dword (no shift back), and post - zp, which adds the zero point (the
     * result plus zp fits int32: |result| <= 2^30 + 1) */
    __m256i shift_odd_hi, post_zp;
} rq256;

static inline EM_AVX2 void rq256_prep(rq256 *q, const em_requant *rq, int c0) {
    /* in vector registers: the former scalar loop wrote 64-bit arrays that wide loads then read back (store
     * forwarding fails), a cost paid per panel per chunk of rows */
    const __m256i r = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)(rq->shift + c0)));
    const __m256i r_even = _mm256_and_si256(r, _mm256_set1_epi64x(0xFFFFFFFFLL)), r_odd = _mm256_srli_epi64(r, 32);
    const __m256i base = _mm256_set1_epi64x((1LL << 62) + (1LL << 30)), one = _mm256_set1_epi64x(1);
    const __m256i thirty = _mm256_set1_epi64x(30), zero = _mm256_setzero_si256();
    /* + 2^(30+r) where r > 0 */
    q->round_even = _mm256_add_epi64(base, _mm256_and_si256(_mm256_cmpgt_epi64(r_even, zero),
                                                            _mm256_sllv_epi64(one, _mm256_add_epi64(r_even, thirty))));
    q->round_odd = _mm256_add_epi64(base, _mm256_and_si256(_mm256_cmpgt_epi64(r_odd, zero),
                                                           _mm256_sllv_epi64(one, _mm256_add_epi64(r_odd, thirty))));
    q->shift_even = _mm256_add_epi64(r_even, _mm256_set1_epi64x(31));
    q->shift_odd = _mm256_add_epi64(r_odd, _mm256_set1_epi64x(31));
    /* 2^(31-r) as uint32 (2^31 wraps to INT32_MIN for r = 0, as the subtraction wants) */
    q->post = _mm256_sllv_epi32(_mm256_set1_epi32(1), _mm256_sub_epi32(_mm256_set1_epi32(31), r));
    q->mult = _mm256_loadu_si256((const __m256i *)(rq->mult + c0));
    q->mult_odd = _mm256_srli_epi64(q->mult, 32);
    q->shift_odd_hi = _mm256_sub_epi64(q->shift_odd, _mm256_set1_epi64x(32));
    q->post_zp = _mm256_sub_epi32(q->post, _mm256_set1_epi32(rq->zp));
}

/* every lane of the 8 shifts right (r >= 1) */
static inline EM_AVX2 int rq256_right(const em_requant *rq, int c0) {
    for (int i = 0; i < 8; i++)
        if (rq->shift[c0 + i] > -1) return 0;
    return 1;
}

static inline EM_AVX2 __m256i mbqm256(__m256i x, const rq256 *q) {
    const __m256i e = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, q->mult), q->round_even), q->shift_even);
    const __m256i o = _mm256_srlv_epi64(
        _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), q->mult_odd), q->round_odd), q->shift_odd);
    return _mm256_sub_epi32(_mm256_blend_epi32(e, _mm256_slli_epi64(o, 32), 0xAA), q->post);
}

/* mbqm256 plus the zero point, for lanes that all shift right (rq256.shift_odd_hi, post_zp) */
static inline EM_AVX2 __m256i mbqm256_zp(__m256i x, const rq256 *q) {
    const __m256i e = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, q->mult), q->round_even), q->shift_even);
    const __m256i o = _mm256_srlv_epi64(
        _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), q->mult_odd), q->round_odd), q->shift_odd_hi);
    return _mm256_sub_epi32(_mm256_blend_epi32(e, o, 0xAA), q->post_zp);
}

/* A panel's output stage, prepared once per panel (not per tile): fast when every lane rounds ties up and
 * shifts right (conv, FC), the constants of its two halves; pair: fast, and the clamp bounds inside int8
 * (rq256_store16x2). */
typedef struct {
    int fast, pair, fold; /* fold: pair, and every lane shifts right (mbqm256_zp) */
    int fold8;            /* the same for channels 0-7 (rq256_store8x2) */
    rq256 h[2];
} rq256_panel;

static inline EM_AVX2 void rq256_panel_prep(rq256_panel *q, const em_requant *rq, int c0) {
    q->fast = c0 + EM_NR <= rq->round_up_below;
    for (int i = 0; i < EM_NR; i++) q->fast &= rq->shift[c0 + i] <= 0;
    q->pair = q->fast && rq->act_min >= -128 && rq->act_max <= 127 && rq->act_min <= rq->act_max;
    q->fold = q->fold8 = 0;
    if (!q->fast) { /* the constants unused; zeroed all the same, so gcc sees no read of uninitialized lanes */
        memset(q->h, 0, sizeof q->h);
        return;
    }
    q->fold8 = q->pair && rq256_right(rq, c0);
    q->fold = q->fold8 && rq256_right(rq, c0 + 8);
    rq256_prep(&q->h[0], rq, c0);
    rq256_prep(&q->h[1], rq, c0 + 8);
}

/* 16 accumulators (channels c0..c0+15) -> 16 int8, n <= 16 of them stored: mbqm256, then em_requant16_avx2's
 * narrowing (int32 -> int16 saturating, zp and the clamp in int16: exact inside the int16 range). */
static inline EM_AVX2 void rq256_store16(__m256i a0, __m256i a1, const rq256_panel *q, const em_requant *rq, int c0,
                                         int n, int8_t *out) {
    if (!q->fast) {
        em_requant16_avx2(a0, a1, rq, c0, n, out);
        return;
    }
    __m256i v = _mm256_permute4x64_epi64(_mm256_packs_epi32(mbqm256(a0, &q->h[0]), mbqm256(a1, &q->h[1])), 0xD8);
    v = _mm256_adds_epi16(v, _mm256_set1_epi16((short)rq->zp));
    v = _mm256_min_epi16(_mm256_max_epi16(v, _mm256_set1_epi16((short)rq->act_min)), _mm256_set1_epi16((short)rq->act_max));
    const __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    if (n == EM_NR) {
        _mm_storeu_si128((__m128i *)out, b);
    } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, b);
        memcpy(out, tmp, (size_t)n);
    }
}

/* Two rows' 16 accumulators (row 0: a0, a1 -> o0; row 1: b0, b1 -> o1) of a panel with q->pair and all 16
 * channels stored: rq256_store16's values, the narrowing shared by the 32 outputs (one int8 pack, clamp and
 * permute).  Clamping after the saturating narrowing to int8 gives what clamping in int16 before it gives:
 * the bounds lie inside int8. */
static inline EM_AVX2 void rq256_store16x2(__m256i a0, __m256i a1, __m256i b0, __m256i b1, const rq256_panel *q,
                                           const em_requant *rq, int8_t *o0, int8_t *o1) {
    /* 128-bit lane 0: channels 0-3, 8-11; lane 1: 4-7, 12-15 (packs works per lane).  With fold the zero point
     * is added in int32 before the saturating packs: the same int8 after them and the clamp. */
    __m256i r0, r1;
    if (q->fold) {
        r0 = _mm256_packs_epi32(mbqm256_zp(a0, &q->h[0]), mbqm256_zp(a1, &q->h[1]));
        r1 = _mm256_packs_epi32(mbqm256_zp(b0, &q->h[0]), mbqm256_zp(b1, &q->h[1]));
    } else {
        const __m256i zp = _mm256_set1_epi16((short)rq->zp);
        r0 = _mm256_adds_epi16(_mm256_packs_epi32(mbqm256(a0, &q->h[0]), mbqm256(a1, &q->h[1])), zp);
        r1 = _mm256_adds_epi16(_mm256_packs_epi32(mbqm256(b0, &q->h[0]), mbqm256(b1, &q->h[1])), zp);
    }
    /* dwords (4 channels each): r0 0-3, r0 8-11, r1 0-3, r1 8-11 | r0 4-7, r0 12-15, r1 4-7, r1 12-15 */
    __m256i v = _mm256_packs_epi16(r0, r1);
    v = _mm256_min_epi8(_mm256_max_epi8(v, _mm256_set1_epi8((char)rq->act_min)), _mm256_set1_epi8((char)rq->act_max));
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm_storeu_si128((__m128i *)o0, _mm256_castsi256_si128(v));
    _mm_storeu_si128((__m128i *)o1, _mm256_extracti128_si256(v, 1));
}

/* Two rows' channels 0-7 (a0 -> o0, b0 -> o1) of a panel with q->pair and exactly 8 channels (the 8-channel layers
 * of MobileNetV2-class models): rq256_store16's values without its unused half, the 16 outputs narrowed together. */
static inline EM_AVX2 void rq256_store8x2(__m256i a0, __m256i b0, const rq256_panel *q, const em_requant *rq,
                                          int8_t *o0, int8_t *o1) {
    /* int16 lanes: a0 0-3, b0 0-3 | a0 4-7, b0 4-7 (packs works per 128-bit lane) */
    const __m256i r = q->fold8 ? _mm256_packs_epi32(mbqm256_zp(a0, &q->h[0]), mbqm256_zp(b0, &q->h[0]))
                               : _mm256_adds_epi16(_mm256_packs_epi32(mbqm256(a0, &q->h[0]), mbqm256(b0, &q->h[0])),
                                                   _mm256_set1_epi16((short)rq->zp));
    /* dwords a0 0-3, b0 0-3, a0 4-7, b0 4-7; the clamp after the saturating narrowing as in rq256_store16x2 */
    __m128i v = _mm_packs_epi16(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    v = _mm_min_epi8(_mm_max_epi8(v, _mm_set1_epi8((char)rq->act_min)), _mm_set1_epi8((char)rq->act_max));
    v = _mm_shuffle_epi32(v, _MM_SHUFFLE(3, 1, 2, 0));
    _mm_storel_epi64((__m128i *)o0, v);
    _mm_storel_epi64((__m128i *)o1, _mm_unpackhi_epi64(v, v));
}

/* Two rows of n <= 16 channels: rq256_store16x2 or rq256_store8x2 where they apply, else rq256_store16 per row. */
static inline EM_AVX2 void rq256_store_rows2(__m256i a0, __m256i a1, __m256i b0, __m256i b1, const rq256_panel *q,
                                             const em_requant *rq, int c0, int n, int8_t *o0, int8_t *o1) {
    if (q->pair && n == EM_NR) {
        rq256_store16x2(a0, a1, b0, b1, q, rq, o0, o1);
        return;
    }
    if (q->pair && n == 8) {
        rq256_store8x2(a0, b0, q, rq, o0, o1);
        return;
    }
    rq256_store16(a0, a1, q, rq, c0, n, o0);
    rq256_store16(b0, b1, q, rq, c0, n, o1);
}

#endif
#endif
