/* 5-D broadcast iteration for element-wise binary ops, and the uniform-multiplier
 * requantization their SIMD paths share.  Internal. */
#ifndef EDGE_MAAS_BINARY_H
#define EDGE_MAAS_BINARY_H
#include "em_kernels.h"
#include "requant.h"

/* Runs its body (the arguments after `a`: commas allowed) once per inner row: p1, p2 point at the row's first operands
 * (inner strides a->s1[4], a->s2[4]), `o` is the row's first output index and
 * the row has a->dims[4] elements. */
#define EM_BINARY_ROWS(a, ...)                                                                    \
    do {                                                                                         \
        size_t o = 0;                                                                            \
        for (int i0 = 0; i0 < (a)->dims[0]; i0++)                                                \
            for (int i1 = 0; i1 < (a)->dims[1]; i1++)                                            \
                for (int i2 = 0; i2 < (a)->dims[2]; i2++)                                        \
                    for (int i3 = 0; i3 < (a)->dims[3]; i3++, o += (a)->dims[4]) {               \
                        const int8_t *p1 = (a)->in1 + (long)i0 * (a)->s1[0] + (long)i1 * (a)->s1[1] + \
                                           (long)i2 * (a)->s1[2] + (long)i3 * (a)->s1[3];        \
                        const int8_t *p2 = (a)->in2 + (long)i0 * (a)->s2[0] + (long)i1 * (a)->s2[1] + \
                                           (long)i2 * (a)->s2[2] + (long)i3 * (a)->s2[3];        \
                        __VA_ARGS__                                                              \
                    }                                                                            \
    } while (0)

/* One multiplier and shift for every lane (ADD, SUB, MUL), as the SIMD paths want them:
 * em_multiply_by_quantized_multiplier(x, mult, shift) = mbqm_uniform(x << left).  The SIMD
 * forms below hold for |mult| in [2^30, 2^31) of either sign (SUB negates one), and need
 * |x * mult| / 2^31 + 2^(right-1) < 2^31, which the binary ops' operands (|x| < 2^30 once
 * right > 0) satisfy. */
typedef struct {
    int32_t mult;
    int left, right;    /* shift > 0: left = shift, right = 0; else left = 0, right = -shift */
} em_uq;

static inline em_uq em_uq_make(int32_t mult, int32_t shift) {
    em_uq q;
    q.mult = mult;
    q.left = shift > 0 ? shift : 0;
    q.right = shift > 0 ? 0 : -shift;
    return q;
}

/* The SIMD forms take 0 <= right <= 30 and a multiplier in [2^30, 2^31) or its negation. */
static inline int em_uq_simd_ok(const em_uq *q) {
    const int64_t m = q->mult < 0 ? -(int64_t)q->mult : q->mult;
    return q->right <= 30 && m >= (1LL << 30) && m < (1LL << 31);
}

#ifdef EM_HAVE_AVX2
/* MultiplyByQuantizedMultiplier on 8 (16) lanes with one multiplier.
 * hm = SRDHM(x, m) = floor((x m + 2^30) / 2^31) (requant.h's em_mbqm_avx2 explains why).
 * RoundingDivideByPOT(hm, r), ties away from zero, is floor((hm + 2^(r-1) - [hm < 0]) / 2^r),
 * and [hm < 0] may be replaced by [x m < 0]: they differ only when -2^30 <= x m < 0, where
 * hm = 0 and both give 0 for r >= 1 (so may x = 0 count either way).  [x m < 0] is then the
 * sign bit of x, or of ~x when m < 0: no 64-bit compare, no per-lane shift.
 * The kernels build the constants once (em_uq8_make) and keep them in registers: values
 * read through the args struct would be reloaded after every int8 store, which may alias.
 * EM_UQ_DEFINE_VEC: T (em_uq8, em_uq16) and T##_make, a multiplier's constants in registers of VEC (PFX: its
 * intrinsics' prefix, SET1_64 its 64-bit broadcast). */
#define EM_UQ_DEFINE_VEC(T, ATTR, VEC, PFX, SET1_64)                                                          \
    typedef struct {                                                                                          \
        VEC m, nudge, msign;                                                                                  \
        __m128i left, right;                                                                                  \
        int shl, shr;                                                                                         \
    } T;                                                                                                      \
    static inline ATTR T T##_make(const em_uq *q) {                                                           \
        T v;                                                                                                  \
        v.m = PFX##set1_epi32(q->mult);                                                                       \
        /* 2^(r-1) added after the 2^31 division rides in the nudge as 2^(30+r): a multiple of 2^31 */        \
        v.nudge = SET1_64((1LL << 30) + (q->right > 0 ? 1LL << (30 + q->right) : 0));                         \
        v.msign = PFX##set1_epi32(q->mult < 0 ? -1 : 0);                                                      \
        v.left = _mm_cvtsi32_si128(q->left);                                                                  \
        v.right = _mm_cvtsi32_si128(q->right);                                                                \
        v.shl = q->left > 0;                                                                                  \
        v.shr = q->right > 0;                                                                                 \
        return v;                                                                                             \
    }
EM_UQ_DEFINE_VEC(em_uq8, EM_AVX2, __m256i, _mm256_, _mm256_set1_epi64x)

static inline EM_AVX2 __m256i em_uq_avx2(__m256i x, const em_uq8 *v) {
    if (v->shl) x = _mm256_sll_epi32(x, v->left); /* wraps, as (uint32_t)x << left */
    __m256i pe = _mm256_add_epi64(_mm256_mul_epi32(x, v->m), v->nudge);
    __m256i po = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), v->m), v->nudge);
    __m256i hm = _mm256_blend_epi32(_mm256_srli_epi64(pe, 31), _mm256_slli_epi64(po, 1), 0xAA);
    if (!v->shr) return hm; /* (the nudge is 2^30 then) */
    __m256i neg = _mm256_srai_epi32(_mm256_xor_si256(x, v->msign), 31);
    return _mm256_sra_epi32(_mm256_add_epi32(hm, neg), v->right);
}

EM_UQ_DEFINE_VEC(em_uq16, EM_AVX512, __m512i, _mm512_, _mm512_set1_epi64)

/* The same on 16 lanes. */
static inline EM_AVX512 __m512i em_uq_avx512(__m512i x, const em_uq16 *v) {
    if (v->shl) x = _mm512_sll_epi32(x, v->left);
    __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(x, v->m), v->nudge);
    __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), v->m), v->nudge);
    __m512i hm = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 31), _mm512_slli_epi64(po, 1));
    if (!v->shr) return hm;
    __m512i neg = _mm512_srai_epi32(_mm512_xor_si512(x, v->msign), 31);
    return _mm512_sra_epi32(_mm512_add_epi32(hm, neg), v->right);
}
#endif

#ifdef EM_HAVE_NEON
/* 4 lanes with one multiplier: requant.h's em_mbqm_neon with the multiplier and shift broadcast (vqrdmulh is
 * SRDHM for either sign of the multiplier). */
static inline int32x4_t em_uq_neon(int32x4_t x, int32_t mult, int32_t shift) {
    return em_mbqm_neon(x, vdupq_n_s32(mult), vdupq_n_s32(shift), 0, 0);
}

/* 16 operands of a row (stride 1) or one broadcast (stride 0), plus the input offset, as two int16x8: x + offset
 * lies in [-255, 255]. */
static inline void em_load16_offset_neon(const int8_t *p, int stride, int16x8_t off, int16x8_t u[2]) {
    const int8x16_t x = stride ? vld1q_s8(p) : vdupq_n_s8(p[0]);
    u[0] = vaddq_s16(vmovl_s8(vget_low_s8(x)), off);
    u[1] = vaddq_s16(vmovl_high_s8(x), off);
}
#endif

#endif
