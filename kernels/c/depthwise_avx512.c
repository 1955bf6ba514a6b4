/* DEPTHWISE_CONV_2D, AVX-512 VNNI: one output row of the flat-row plan (depthwise_x86.h) in its tap-interleaved
 * layout, 64-byte chunks (16 output bytes per register), one vpdpbusd per register per kernel row and group of
 * 4 taps, and a 16-lane requantization with 64-bit arithmetic shifts. */
#include <string.h>
#include "depthwise_x86.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define EM_DW_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define LD(ptr) _mm512_loadu_si512((const void *)(ptr))

#define ST(ptr, v) _mm512_storeu_si512((void *)(ptr), (v))
EM_DW_DEFINE_ILV(em_dw_ilv_avx512, EM_DW_AVX512, __m512i, _mm512_, LD, ST)

/* MultiplyByQuantizedMultiplier of 16 lanes of register k from lane q0 (even), depthwise_x86.h's single
 * rounding: p = x * mult + 2^30 + c 2^31 (less 2^31 where ties go away from zero and p < -2^30), >> 31 + r. */
static inline EM_DW_AVX512 __m512i dw_rq16(__m512i x, const em_dw_plan *p, const em_dw_consts *cs, int k, int q0) {
    const size_t o32 = (size_t)k * cs->Q + q0, o64 = (size_t)k * (cs->Q / 2) + (q0 >> 1);
    if (p->any_left) x = _mm512_sllv_epi32(x, LD(cs->left + o32));
    __m512i pe = _mm512_mul_epi32(x, LD(cs->me + o64));
    __m512i po = _mm512_mul_epi32(_mm512_shuffle_epi32(x, _MM_PERM_DDBB), LD(cs->mo + o64)); /* odd lanes, on p5 */
    if (p->any_away) {
        const __m512i lim = _mm512_set1_epi64(-(1LL << 30));
        const __mmask8 ne = _mm512_cmplt_epi64_mask(pe, lim), no = _mm512_cmplt_epi64_mask(po, lim);
        pe = _mm512_add_epi64(pe, LD(cs->ke + o64));
        po = _mm512_add_epi64(po, LD(cs->ko + o64));
        pe = _mm512_mask_sub_epi64(pe, ne, pe, LD(cs->awe + o64));
        po = _mm512_mask_sub_epi64(po, no, po, LD(cs->awo + o64));
    } else {
        pe = _mm512_add_epi64(pe, LD(cs->ke + o64));
        po = _mm512_add_epi64(po, LD(cs->ko + o64));
    }
    pe = _mm512_srav_epi64(pe, LD(cs->se + o64));
    po = _mm512_srav_epi64(po, LD(cs->so + o64));
    if (!p->odd_high) po = _mm512_slli_epi64(po, 32);
    return _mm512_mask_blend_epi32(0xAAAA, pe, po);
}

/* Registers 0..3 of a chunk -> 64 int8 in order, n <= 64 stored: int32 -> int16 saturating, zp and the clamp in
 * int16 (as em_requant16_avx2); the packs leave per 128-bit lane register k's 4 lanes at bytes 4k..: output
 * order in this layout. */
static inline EM_DW_AVX512 void dw_out64(__m512i a0, __m512i a1, __m512i a2, __m512i a3, const em_dw_plan *p, int q0,
                                         int8_t *out, int n) {
    const em_dw_consts *cs = &p->in;
    const __m512i zp = _mm512_set1_epi16((short)p->zp);
    const __m512i lo = _mm512_set1_epi16((short)p->act_min), hi = _mm512_set1_epi16((short)p->act_max);
    const __m512i r0 = dw_rq16(a0, p, cs, 0, q0), r1 = dw_rq16(a1, p, cs, 1, q0), r2 = dw_rq16(a2, p, cs, 2, q0),
                  r3 = dw_rq16(a3, p, cs, 3, q0);
    __m512i s01 = _mm512_min_epi16(_mm512_max_epi16(_mm512_adds_epi16(_mm512_packs_epi32(r0, r1), zp), lo), hi);
    __m512i s23 = _mm512_min_epi16(_mm512_max_epi16(_mm512_adds_epi16(_mm512_packs_epi32(r2, r3), zp), lo), hi);
    const __m512i b = _mm512_packs_epi16(s01, s23);
    if (n >= 64)
        _mm512_storeu_si512((void *)out, b);
    else
        _mm512_mask_storeu_epi8(out, (__mmask64)(((uint64_t)1 << n) - 1), b);
}

/* 64-byte chunks: 16 output bytes per register. */
#define DW_OUT(a0, a1, a2, a3, q, o, n) dw_out64(a0, a1, a2, a3, p, q, o, n)
EM_DW_DEFINE_ILV_CHUNKS(dw_chunks, EM_DW_AVX512, __m512i, LD, _mm512_dpbusd_epi32, DW_OUT)
EM_DW_DEFINE_ROW(em_dw_row_avx512, EM_DW_AVX512, dw_chunks, 64, p->P64)
#endif
