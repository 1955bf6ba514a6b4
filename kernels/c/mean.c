/* MEAN (int8) over a contiguous run of axes: int32 sums, then the shared
 * requantization row (per-channel rounding split as the interpreter's kernel).
 * SIMD paths (AVX2, NEON) keep 32 / 16 channels' sums in registers over the
 * reduced axis and requantize with requant.h's rows: the same integers. */
#include <string.h>
#include "requant.h"

/* acc[c] = pre_offset + sum_n x[n * inner + c] for c in [c0, inner), scalar */
static void sum_portable(const em_mean_args *a, const int8_t *x, int c0, int32_t *acc) {
    for (int c = c0; c < a->inner; c++) acc[c] = a->pre_offset;
    for (int n = 0; n < a->count; n++, x += a->inner)
        for (int c = c0; c < a->inner; c++) acc[c] += x[c];
}

#ifdef EM_HAVE_AVX2
static EM_AVX2 void mean_avx2(const em_mean_args *a) {
    const int inner = a->inner;
    for (int o = 0; o < a->outer; o++) {
        const int8_t *x = a->in + (size_t)o * a->count * inner;
        int c = 0;
        for (; c + 32 <= inner; c += 32) {
            __m256i s[4];
            for (int k = 0; k < 4; k++) s[k] = _mm256_set1_epi32(a->pre_offset);
            const int8_t *p = x + c;
            for (int n = 0; n < a->count; n++, p += inner) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)p);
                const __m128i l = _mm256_castsi256_si128(v), h = _mm256_extracti128_si256(v, 1);
                s[0] = _mm256_add_epi32(s[0], _mm256_cvtepi8_epi32(l));
                s[1] = _mm256_add_epi32(s[1], _mm256_cvtepi8_epi32(_mm_srli_si128(l, 8)));
                s[2] = _mm256_add_epi32(s[2], _mm256_cvtepi8_epi32(h));
                s[3] = _mm256_add_epi32(s[3], _mm256_cvtepi8_epi32(_mm_srli_si128(h, 8)));
            }
            for (int k = 0; k < 4; k++) _mm256_storeu_si256((__m256i *)(a->scratch + c + 8 * k), s[k]);
        }
        sum_portable(a, x, c, a->scratch);
        em_requant_row_avx2(a->scratch, inner, &a->rq, 0, a->out + (size_t)o * inner);
    }
}
#endif

#ifdef EM_HAVE_NEON
static void mean_neon(const em_mean_args *a) {
    const int inner = a->inner;
    for (int o = 0; o < a->outer; o++) {
        const int8_t *x = a->in + (size_t)o * a->count * inner;
        int c = 0;
        for (; c + 16 <= inner; c += 16) {
            int32x4_t s0 = vdupq_n_s32(a->pre_offset), s1 = s0, s2 = s0, s3 = s0;
            const int8_t *p = x + c;
            for (int n = 0; n < a->count; n++, p += inner) {
                const int8x16_t v = vld1q_s8(p);
                const int16x8_t l = vmovl_s8(vget_low_s8(v)), h = vmovl_high_s8(v);
                s0 = vaddw_s16(s0, vget_low_s16(l));
                s1 = vaddw_high_s16(s1, l);
                s2 = vaddw_s16(s2, vget_low_s16(h));
                s3 = vaddw_high_s16(s3, h);
            }
            vst1q_s32(a->scratch + c, s0);
            vst1q_s32(a->scratch + c + 4, s1);
            vst1q_s32(a->scratch + c + 8, s2);
            vst1q_s32(a->scratch + c + 12, s3);
        }
        sum_portable(a, x, c, a->scratch);
        em_requant_row_neon(a->scratch, inner, &a->rq, 0, a->out + (size_t)o * inner);
    }
}
#endif

void em_mean(const void *args) {
    const em_mean_args *a = (const em_mean_args *)args;
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2) { mean_avx2(a); return; }
#endif
#ifdef EM_HAVE_NEON
    if (em_isa_get() >= EM_ISA_NEON) { mean_neon(a); return; }
#endif
    for (int o = 0; o < a->outer; o++) {
        sum_portable(a, a->in + (size_t)o * a->count * a->inner, 0, a->scratch);
        em_requant_row_portable(a->scratch, a->inner, &a->rq, 0, a->out + (size_t)o * a->inner);
    }
}
