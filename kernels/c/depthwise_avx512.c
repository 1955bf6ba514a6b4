/* DEPTHWISE_CONV_2D, AVX-512 VNNI: one output row of the flat-row plan (depthwise_x86.h) in 64-byte chunks,
 * four vpdpbusd per tap (one per weight stream) and a 16-lane requantization with 64-bit arithmetic shifts. */
#include <string.h>
#include "depthwise_x86.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define EM_DW_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define LD(ptr) _mm512_loadu_si512((const void *)(ptr))

/* MultiplyByQuantizedMultiplier of 16 lanes of stream k from lane q0 (even), depthwise_x86.h's single
 * rounding: p = x * mult + 2^30 + c 2^31 (less 2^31 where ties go away from zero and p < -2^30), >> 31 + r. */
static inline EM_DW_AVX512 __m512i dw_rq16(__m512i x, const em_dw_plan *p, int k, int q0) {
    const size_t o32 = (size_t)k * p->Q + q0, o64 = (size_t)k * (p->Q / 2) + (q0 >> 1);
    if (p->any_left) x = _mm512_sllv_epi32(x, LD(p->left + o32));
    __m512i pe = _mm512_mul_epi32(x, LD(p->me + o64));
    __m512i po = _mm512_mul_epi32(_mm512_shuffle_epi32(x, _MM_PERM_DDBB), LD(p->mo + o64)); /* odd lanes, on p5 */
    if (p->any_away) {
        const __m512i lim = _mm512_set1_epi64(-(1LL << 30));
        const __mmask8 ne = _mm512_cmplt_epi64_mask(pe, lim), no = _mm512_cmplt_epi64_mask(po, lim);
        pe = _mm512_add_epi64(pe, LD(p->ke + o64));
        po = _mm512_add_epi64(po, LD(p->ko + o64));
        pe = _mm512_mask_sub_epi64(pe, ne, pe, LD(p->awe + o64));
        po = _mm512_mask_sub_epi64(po, no, po, LD(p->awo + o64));
    } else {
        pe = _mm512_add_epi64(pe, LD(p->ke + o64));
        po = _mm512_add_epi64(po, LD(p->ko + o64));
    }
    pe = _mm512_srav_epi64(pe, LD(p->se + o64));
    po = _mm512_srav_epi64(po, LD(p->so + o64));
    if (!p->odd_high) po = _mm512_slli_epi64(po, 32);
    return _mm512_mask_blend_epi32(0xAAAA, pe, po);
}

/* Streams 0..3 of a chunk -> 64 int8 in order, n <= 64 stored: int32 -> int16 saturating, zp and the clamp in
 * int16 (as em_requant16_avx2), then per 128-bit lane stream k's 4 lanes at bytes 4k.. -> output order. */
static inline EM_DW_AVX512 void dw_out64(__m512i a0, __m512i a1, __m512i a2, __m512i a3, const em_dw_plan *p, int q0,
                                         int8_t *out, int n) {
    const __m512i zp = _mm512_set1_epi16((short)p->zp);
    const __m512i lo = _mm512_set1_epi16((short)p->act_min), hi = _mm512_set1_epi16((short)p->act_max);
    const __m512i order = _mm512_broadcast_i32x4(_mm_setr_epi8(EM_DW_UNSPREAD));
    const __m512i r0 = dw_rq16(a0, p, 0, q0), r1 = dw_rq16(a1, p, 1, q0), r2 = dw_rq16(a2, p, 2, q0),
                  r3 = dw_rq16(a3, p, 3, q0);
    __m512i s01 = _mm512_min_epi16(_mm512_max_epi16(_mm512_adds_epi16(_mm512_packs_epi32(r0, r1), zp), lo), hi);
    __m512i s23 = _mm512_min_epi16(_mm512_max_epi16(_mm512_adds_epi16(_mm512_packs_epi32(r2, r3), zp), lo), hi);
    const __m512i b = _mm512_shuffle_epi8(_mm512_packs_epi16(s01, s23), order);
    if (n >= 64)
        _mm512_storeu_si512((void *)out, b);
    else
        _mm512_mask_storeu_epi8(out, (__mmask64)(((uint64_t)1 << n) - 1), b);
}

/* One output row in 64-byte chunks, two at a time (eight vpdpbusd chains: one chunk's four wait on the
 * instruction's latency). */
void EM_DW_AVX512 em_dw_row_avx512(const em_dw_plan *p, const uint8_t *const *tap, int8_t *out, int len) {
    const size_t PL = (size_t)p->PL;
    const int Q = p->Q, step = 64 % p->P, taps = p->taps;
    const int32_t *bias = p->bias;
    const int8_t *wsp = p->wsp;
    int ph = 0, f = 0;
    for (; f + 64 < len; f += 128) {
        int ph1 = ph + step;
        if (ph1 >= p->P) ph1 -= p->P;
        const int q0 = ph >> 2, q1 = ph1 >> 2;
        __m512i a0 = LD(bias + q0), a1 = LD(bias + Q + q0), a2 = LD(bias + 2 * Q + q0), a3 = LD(bias + 3 * Q + q0);
        __m512i b0 = LD(bias + q1), b1 = LD(bias + Q + q1), b2 = LD(bias + 2 * Q + q1), b3 = LD(bias + 3 * Q + q1);
        const int8_t *w = wsp + ph, *v = wsp + ph1;
        for (int t = 0; t < taps; t++, w += 4 * PL, v += 4 * PL) {
            const __m512i x = LD(tap[t] + f), y = LD(tap[t] + f + 64);
            a0 = _mm512_dpbusd_epi32(a0, x, LD(w));
            b0 = _mm512_dpbusd_epi32(b0, y, LD(v));
            a1 = _mm512_dpbusd_epi32(a1, x, LD(w + PL));
            b1 = _mm512_dpbusd_epi32(b1, y, LD(v + PL));
            a2 = _mm512_dpbusd_epi32(a2, x, LD(w + 2 * PL));
            b2 = _mm512_dpbusd_epi32(b2, y, LD(v + 2 * PL));
            a3 = _mm512_dpbusd_epi32(a3, x, LD(w + 3 * PL));
            b3 = _mm512_dpbusd_epi32(b3, y, LD(v + 3 * PL));
        }
        dw_out64(a0, a1, a2, a3, p, q0, out + f, 64);
        dw_out64(b0, b1, b2, b3, p, q1, out + f + 64, len - f - 64);
        ph = ph1 + step;
        if (ph >= p->P) ph -= p->P;
    }
    if (f < len) { /* the last chunk alone */
        const int q0 = ph >> 2;
        __m512i a0 = LD(bias + q0), a1 = LD(bias + Q + q0), a2 = LD(bias + 2 * Q + q0), a3 = LD(bias + 3 * Q + q0);
        const int8_t *w = wsp + ph;
        for (int t = 0; t < taps; t++, w += 4 * PL) {
            const __m512i x = LD(tap[t] + f);
            a0 = _mm512_dpbusd_epi32(a0, x, LD(w));
            a1 = _mm512_dpbusd_epi32(a1, x, LD(w + PL));
            a2 = _mm512_dpbusd_epi32(a2, x, LD(w + 2 * PL));
            a3 = _mm512_dpbusd_epi32(a3, x, LD(w + 3 * PL));
        }
        dw_out64(a0, a1, a2, a3, p, q0, out + f, len - f);
    }
}
#endif
