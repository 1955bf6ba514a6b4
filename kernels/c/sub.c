/* SUB (int8): ADD's arithmetic with input 2's multiplier negated by the caller,
 * as the interpreter's sub.cc sets it up, but without ADD's int16 wrap-around:
 * measured on the interpreter, its SUB saturates like the scalar code at every
 * position (outputs far outside int8 clamp, they do not wrap).  Ties away from
 * zero throughout.  AVX2: 8 lanes along contiguous or broadcast rows. */
#include "binary.h"
#include "requant.h"

static inline int8_t sub_one(const em_binary_args *a, int32_t x1, int32_t x2) {
    const int32_t v1 = (int32_t)((uint32_t)(x1 + a->in1_offset) << a->left_shift);
    const int32_t v2 = (int32_t)((uint32_t)(x2 + a->in2_offset) << a->left_shift);
    const int32_t sum = em_multiply_by_quantized_multiplier(v1, a->in1_mult, a->in1_shift) +
                        em_multiply_by_quantized_multiplier(v2, a->in2_mult, a->in2_shift);
    const int32_t v = em_multiply_by_quantized_multiplier(sum, a->out_mult, a->out_shift) + a->out_offset;
    return em_clamp_i8(v, a->act_min, a->act_max);
}

static void sub_portable(const em_binary_args *a) {
    const int s1 = a->s1[4], s2 = a->s2[4], n = a->dims[4];
    EM_BINARY_ROWS(a, {
        for (int i = 0; i < n; i++) a->out[o + i] = sub_one(a, p1[(long)i * s1], p2[(long)i * s2]);
    });
}

#ifdef EM_HAVE_AVX2
static inline EM_AVX2 __m256i sub_load8(const int8_t *p, int stride) {
    return stride ? _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)) : _mm256_set1_epi32(p[0]);
}

/* Inner axis contiguous (stride 1) or broadcast (stride 0): 8 lanes at a time, the same integer
 * steps as sub_one (em_mbqm_avx2 is exact for negative multipliers too: floor((ab + 2^30) / 2^31)). */
static EM_AVX2 void sub_avx2(const em_binary_args *a) {
    const __m128i ls = _mm_cvtsi32_si128(a->left_shift);
    const __m256i o1 = _mm256_set1_epi32(a->in1_offset), o2 = _mm256_set1_epi32(a->in2_offset);
    const __m256i m1 = _mm256_set1_epi32(a->in1_mult), h1 = _mm256_set1_epi32(a->in1_shift);
    const __m256i m2 = _mm256_set1_epi32(a->in2_mult), h2 = _mm256_set1_epi32(a->in2_shift);
    const __m256i mo = _mm256_set1_epi32(a->out_mult), ho = _mm256_set1_epi32(a->out_shift);
    const __m256i zo = _mm256_set1_epi32(a->out_offset);
    const __m256i lo = _mm256_set1_epi32(a->act_min), hi = _mm256_set1_epi32(a->act_max);
    const int n = a->dims[4], s1 = a->s1[4], s2 = a->s2[4];
    EM_BINARY_ROWS(a, {
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            __m256i v1 = _mm256_sll_epi32(_mm256_add_epi32(sub_load8(p1 + (long)i * s1, s1), o1), ls);
            __m256i v2 = _mm256_sll_epi32(_mm256_add_epi32(sub_load8(p2 + (long)i * s2, s2), o2), ls);
            __m256i sum = _mm256_add_epi32(em_mbqm_avx2(v1, m1, h1, 0, 0), em_mbqm_avx2(v2, m2, h2, 0, 0));
            __m256i v = _mm256_add_epi32(em_mbqm_avx2(sum, mo, ho, 0, 0), zo);
            v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
            __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            _mm_storel_epi64((__m128i *)(a->out + o + i), _mm_packs_epi16(w, w));
        }
        for (; i < n; i++) a->out[o + i] = sub_one(a, p1[(long)i * s1], p2[(long)i * s2]);
    });
}
#endif

void em_sub(const void *args) {
    const em_binary_args *a = (const em_binary_args *)args;
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2 && a->s1[4] <= 1 && a->s2[4] <= 1) { sub_avx2(a); return; }
#endif
    sub_portable(a);
}
