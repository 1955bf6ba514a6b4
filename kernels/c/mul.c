/* MUL (int8): product of the offset inputs, requantized to the output.
 *
 * The interpreter's vectorized loop handles each run of 16 elements in int16
 * after the multiply: the result saturates to int16 and the zero point is
 * added with int16 wrap-around before the clamp.  Only outputs far outside
 * int8 see the difference, but we follow it; the n % 16 tail is plain int32.
 * SIMD paths (AVX2, AVX-512, NEON) take the runs of 16 along contiguous or
 * broadcast rows with binary.h's uniform requantization: |product| <= 255^2,
 * and saturating narrows are exactly the interpreter's int16 saturation. */
#include "binary.h"

static inline int8_t mul_one(const em_binary_args *a, int32_t x1, int32_t x2, int in_block) {
    int32_t prod = (x1 + a->in1_offset) * (x2 + a->in2_offset);
    int32_t v = em_multiply_by_quantized_multiplier(prod, a->out_mult, a->out_shift);
    if (in_block) {
        int16_t h = (int16_t)(v < -32768 ? -32768 : (v > 32767 ? 32767 : v));
        return em_clamp_i8((int16_t)(uint16_t)((uint16_t)h + (uint16_t)a->out_offset), a->act_min, a->act_max);
    }
    return em_clamp_i8(v + a->out_offset, a->act_min, a->act_max);
}

/* Elements [i, n) of a row, i at a multiple of 16: the rest of the runs, then the tail. */
static inline void mul_scalar(const em_binary_args *a, const int8_t *p1, const int8_t *p2, int8_t *out, int i) {
    const int s1 = a->s1[4], s2 = a->s2[4], n = a->dims[4], blocked = n - n % 16;
    for (; i < n; i++) out[i] = mul_one(a, p1[(long)i * s1], p2[(long)i * s2], i < blocked);
}

#ifdef EM_HAVE_AVX2
static inline EM_AVX2 __m256i prod8_avx2(const int8_t *p1, int s1, __m256i o1, const int8_t *p2, int s2, __m256i o2) {
    __m256i x1 = s1 ? _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p1)) : _mm256_set1_epi32(p1[0]);
    __m256i x2 = s2 ? _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p2)) : _mm256_set1_epi32(p2[0]);
    return _mm256_mullo_epi32(_mm256_add_epi32(x1, o1), _mm256_add_epi32(x2, o2));
}

/* The body (the arguments after `a`: commas allowed) once per run of 16 at element i of each row (p1, p2, out:
 * the row's operands and output), then mul_scalar's tail; n, s1, s2: the row's length and inner strides; zo, lo,
 * hi: the int16 output zero point and clamp.  The multiplier's constants stay in registers (binary.h). */
#define MUL_RUNS16(a, ...)                                                                                    \
    do {                                                                                                      \
        const int n = (a)->dims[4], s1 = (a)->s1[4], s2 = (a)->s2[4];                                         \
        const __m256i zo = _mm256_set1_epi16((short)(a)->out_offset);                                         \
        const __m256i lo = _mm256_set1_epi16((short)(a)->act_min);                                           \
        const __m256i hi = _mm256_set1_epi16((short)(a)->act_max);                                            \
        EM_BINARY_ROWS(a, {                                                                                   \
            int8_t *out = (a)->out + o;                                                                       \
            int i = 0;                                                                                        \
            for (; i + 16 <= n; i += 16) {                                                                    \
                __VA_ARGS__                                                                                   \
            }                                                                                                 \
            mul_scalar(a, p1, p2, out, i);                                                                    \
        });                                                                                                   \
    } while (0)

static EM_AVX2 void mul_avx2(const em_binary_args *a, const em_uq *uq) {
    const em_uq8 q = em_uq8_make(uq);
    const __m256i o1 = _mm256_set1_epi32(a->in1_offset), o2 = _mm256_set1_epi32(a->in2_offset);
    MUL_RUNS16(a, {
        __m256i v0 = em_uq_avx2(prod8_avx2(p1 + (long)i * s1, s1, o1, p2 + (long)i * s2, s2, o2), &q);
        __m256i v1 = em_uq_avx2(prod8_avx2(p1 + (long)(i + 8) * s1, s1, o1, p2 + (long)(i + 8) * s2, s2, o2), &q);
        __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(v0, v1), 0xD8); /* int16 saturation */
        w = _mm256_min_epi16(_mm256_max_epi16(_mm256_add_epi16(w, zo), lo), hi);  /* zp wraps in int16 */
        _mm_storeu_si128((__m128i *)(out + i),
                         _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
    });
}

static EM_AVX512 void mul_avx512(const em_binary_args *a, const em_uq *uq) {
    const em_uq16 q = em_uq16_make(uq);
    const __m512i o1 = _mm512_set1_epi32(a->in1_offset), o2 = _mm512_set1_epi32(a->in2_offset);
    MUL_RUNS16(a, {
        const int8_t *q1 = p1 + (long)i * s1, *q2 = p2 + (long)i * s2;
        __m512i x1 = s1 ? _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q1)) : _mm512_set1_epi32(q1[0]);
        __m512i x2 = s2 ? _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q2)) : _mm512_set1_epi32(q2[0]);
        __m512i v = em_uq_avx512(_mm512_mullo_epi32(_mm512_add_epi32(x1, o1), _mm512_add_epi32(x2, o2)), &q);
        __m256i w = _mm256_add_epi16(_mm512_cvtsepi32_epi16(v), zo);
        w = _mm256_min_epi16(_mm256_max_epi16(w, lo), hi);
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtsepi16_epi8(w));
    });
}
#endif

#ifdef EM_HAVE_NEON
static void mul_neon(const em_binary_args *a) {
    const int n = a->dims[4], s1 = a->s1[4], s2 = a->s2[4];
    const int16x8_t o1 = vdupq_n_s16((int16_t)a->in1_offset), o2 = vdupq_n_s16((int16_t)a->in2_offset);
    const int16x8_t zo = vdupq_n_s16((int16_t)a->out_offset);
    const int16x8_t lo = vdupq_n_s16((int16_t)a->act_min), hi = vdupq_n_s16((int16_t)a->act_max);
    EM_BINARY_ROWS(a, {
        int i = 0;
        for (; i + 16 <= n; i += 16) {
            int16x8_t u1[2], u2[2]; /* int16 operands, so the product is int32 (vmull) */
            em_load16_offset_neon(p1 + (s1 ? i : 0), s1, o1, u1);
            em_load16_offset_neon(p2 + (s2 ? i : 0), s2, o2, u2);
            int16x8_t w[2];
            for (int h = 0; h < 2; h++) {
                const int32x4_t r0 = em_uq_neon(vmull_s16(vget_low_s16(u1[h]), vget_low_s16(u2[h])), a->out_mult,
                                                a->out_shift);
                const int32x4_t r1 = em_uq_neon(vmull_high_s16(u1[h], u2[h]), a->out_mult, a->out_shift);
                /* int16 saturation, then the zero point with int16 wrap-around, as the interpreter */
                w[h] = vaddq_s16(vcombine_s16(vqmovn_s32(r0), vqmovn_s32(r1)), zo);
                w[h] = vminq_s16(vmaxq_s16(w[h], lo), hi);
            }
            vst1q_s8(a->out + o + i, vcombine_s8(vqmovn_s16(w[0]), vqmovn_s16(w[1])));
        }
        mul_scalar(a, p1, p2, a->out + o, i);
    });
}
#endif

void em_mul(const void *args) {
    const em_binary_args *a = (const em_binary_args *)args;
    const em_uq q = em_uq_make(a->out_mult, a->out_shift);
    const int simd = a->s1[4] <= 1 && a->s2[4] <= 1 && em_uq_simd_ok(&q);
#ifdef EM_HAVE_AVX2
    if (simd && em_isa_get() == EM_ISA_AVX512VNNI) { mul_avx512(a, &q); return; }
    if (simd && em_isa_get() >= EM_ISA_AVX2) { mul_avx2(a, &q); return; }
#endif
#ifdef EM_HAVE_NEON
    if (simd && em_isa_get() >= EM_ISA_NEON) { mul_neon(a); return; }
#endif
    (void)simd;
    EM_BINARY_ROWS(a, { mul_scalar(a, p1, p2, a->out + o, 0); });
}
