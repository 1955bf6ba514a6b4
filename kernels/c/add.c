/* ADD and SUB (int8), one kernel: both inputs scaled to a common 2^left_shift fixed-point
 * scale, summed, then requantized to the output, as TFLite's integer Add (ties away from
 * zero throughout).  SUB is the same arithmetic with input 2's multiplier negated by the
 * caller (as the interpreter's sub.cc sets it up).  They differ in one thing: in the
 * interpreter's vectorized ADD loop the output plus zero point wraps to int16 before the
 * clamp (only outputs far outside int8 see it); its runs are 16 elements, or 8 when one
 * operand is a broadcast scalar along the row, and the tail of the row stays int32.  Its
 * SUB saturates like the scalar code at every position (measured): no wrap.
 *
 * SIMD paths (AVX2 8 lanes, AVX-512 16, NEON 4) along contiguous or broadcast rows, the same
 * integer steps as addsub_one: each input term and the output use binary.h's uniform
 * requantization; an input whose multiplier is exactly 1/2 (the larger-scale input, always:
 * its multiplier is s / (2 s) = 2^30 x 2^-31) is v / 2 = u << (left_shift - 1), exactly. */
#include "binary.h"

static inline int8_t addsub_one(const em_binary_args *a, int32_t x1, int32_t x2, int wrap) {
    int32_t v1 = (int32_t)((uint32_t)(x1 + a->in1_offset) << a->left_shift);
    int32_t v2 = (int32_t)((uint32_t)(x2 + a->in2_offset) << a->left_shift);
    int32_t sum = em_multiply_by_quantized_multiplier(v1, a->in1_mult, a->in1_shift) +
                  em_multiply_by_quantized_multiplier(v2, a->in2_mult, a->in2_shift);
    int32_t v = em_multiply_by_quantized_multiplier(sum, a->out_mult, a->out_shift) + a->out_offset;
    if (wrap) v = (int16_t)(uint16_t)(uint32_t)v;
    return em_clamp_i8(v, a->act_min, a->act_max);
}

/* Elements before this index of each row wrap to int16 (ADD only). */
static inline int wrap_end(const em_binary_args *a, int wrap) {
    const int n = a->dims[4], block = a->s1[4] == 0 || a->s2[4] == 0 ? 8 : 16;
    return wrap ? n - n % block : 0;
}

/* Each input's term is a function of its byte: on ops large enough to pay for 512 evaluations, two
 * 256-entry tables of those very integers leave one requantization per element. */
static void addsub_portable(const em_binary_args *a, int wrap) {
    const int s1 = a->s1[4], s2 = a->s2[4], n = a->dims[4], blocked = wrap_end(a, wrap);
    const long total = (long)a->dims[0] * a->dims[1] * a->dims[2] * a->dims[3] * n;
    if (total < 2048) {
        EM_BINARY_ROWS(a, {
            for (int i = 0; i < n; i++)
                a->out[o + i] = addsub_one(a, p1[(long)i * s1], p2[(long)i * s2], i < blocked);
        });
        return;
    }
    int32_t t1[256], t2[256];
    for (int x = -128; x < 128; x++) {
        t1[(uint8_t)x] = em_multiply_by_quantized_multiplier(
            (int32_t)((uint32_t)(x + a->in1_offset) << a->left_shift), a->in1_mult, a->in1_shift);
        t2[(uint8_t)x] = em_multiply_by_quantized_multiplier(
            (int32_t)((uint32_t)(x + a->in2_offset) << a->left_shift), a->in2_mult, a->in2_shift);
    }
    const int32_t mo = a->out_mult, so = a->out_shift, zo = a->out_offset, lo = a->act_min, hi = a->act_max;
    EM_BINARY_ROWS(a, {
        int8_t *out = a->out + o;
        for (int i = 0; i < n; i++) {
            const int32_t sum = t1[(uint8_t)p1[(long)i * s1]] + t2[(uint8_t)p2[(long)i * s2]];
            int32_t v = em_multiply_by_quantized_multiplier(sum, mo, so) + zo;
            if (i < blocked) v = (int16_t)(uint16_t)(uint32_t)v;
            out[i] = em_clamp_i8(v, lo, hi);
        }
    });
}

/* The SIMD paths' constants; ok when their preconditions hold (left_shift in [1, 20] keeps
 * |v| < 2^28 and even; the multipliers are below one, so no left shifts). */
typedef struct {
    em_uq q1, q2, qo;
    int half1, half2, ok;
} addsub_q;

static addsub_q addsub_prepare(const em_binary_args *a) {
    addsub_q k;
    k.q1 = em_uq_make(a->in1_mult, a->in1_shift);
    k.q2 = em_uq_make(a->in2_mult, a->in2_shift);
    k.qo = em_uq_make(a->out_mult, a->out_shift);
    k.half1 = a->in1_mult == (1 << 30) && a->in1_shift == 0;
    k.half2 = a->in2_mult == (1 << 30) && a->in2_shift == 0;
    k.ok = a->s1[4] <= 1 && a->s2[4] <= 1 && a->left_shift >= 1 && a->left_shift <= 20 && a->out_mult > 0 &&
           em_uq_simd_ok(&k.q1) &&
           em_uq_simd_ok(&k.q2) && em_uq_simd_ok(&k.qo) && !k.q1.left && !k.q2.left && !k.qo.left;
    return k;
}

#ifdef EM_HAVE_AVX2
/* The x86 paths requantize with one 32 x 32 -> 64-bit multiply per lane (vpmuldq on the even lanes, and on the odd
 * ones moved down), as binary.h's em_uq_*, in fewer steps: the operand enters doubled, so the high half of
 * 2 x m + 2^31 + 2^(31+r) is SRDHM(x, m) plus RoundingDivideByPOT's 2^(r-1) (floor((2xm + 2^31) / 2^32) =
 * floor((xm + 2^30) / 2^31)), and one movehdup-and-blend gathers the high halves of both products (no 64-bit
 * shifts).  The doubled operand stays below 2^30 (|x| < 2^28: left_shift <= 20, see addsub_prepare), the 64-bit
 * sums below 2^63.  An input term takes (x + offset) << (left_shift + 1) as (x << k) + (offset << k), the second
 * part's product folded into the 64-bit constant.  The sign fix-up [x m < 0] is binary.h's (either sign of m);
 * with r = 0 there is neither fix-up nor shift (its `one` and shift count are 0). */
typedef struct {
    int64_t c;         /* (offset << k) m + 2^31 + 2^(31+r) (r > 0); the output's: no offset part */
    int32_t m, one, r; /* one: 1 when r > 0 */
    int32_t neg_below; /* input terms: x < -offset is u < 0 (m > 0); m < 0: x > -offset, see neg_above */
    int neg_above;
} addsub_k;

static addsub_k addsub_k_make(const em_uq *q, int32_t offset, int k) {
    addsub_k v;
    v.m = q->mult;
    v.r = q->right;
    v.one = q->right > 0;
    v.c = (int64_t)((int64_t)offset * (1LL << k)) * q->mult + (1LL << 31) + (q->right > 0 ? 1LL << (31 + q->right) : 0);
    v.neg_below = -offset;
    v.neg_above = q->mult < 0;
    return v;
}

/* Registers of one term (or the output) on 8 lanes. */
typedef struct {
    __m256i m, c, one, bound;
    __m128i r;
    int above;
} term8;

static inline EM_AVX2 term8 term8_make(const addsub_k *k) {
    term8 t = {_mm256_set1_epi32(k->m), _mm256_set1_epi64x(k->c), _mm256_set1_epi32(k->one),
               _mm256_set1_epi32(k->neg_below), _mm_cvtsi32_si128(k->r), k->neg_above};
    return t;
}

/* RoundingDivideByPOT(SRDHM(x / 2, m), r) from xx = 2 x (see above); neg: -1 where x m < 0. */
static inline EM_AVX2 __m256i rq8(__m256i xx, __m256i neg, const term8 *t) {
    const __m256i pe = _mm256_add_epi64(_mm256_mul_epi32(xx, t->m), t->c);
    const __m256i po = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(xx, 32), t->m), t->c);
    const __m256i hm = _mm256_castps_si256(
        _mm256_blend_ps(_mm256_castsi256_ps(po), _mm256_movehdup_ps(_mm256_castsi256_ps(pe)), 0x55));
    return _mm256_sra_epi32(_mm256_sub_epi32(hm, _mm256_and_si256(neg, t->one)), t->r);
}

/* One input's term on 8 lanes from 8 int8 (p, or the broadcast p[0] when stride is 0). */
static inline EM_AVX2 __m256i term8_in(const int8_t *p, int stride, const term8 *t, __m128i k, int half, __m256i off,
                                       __m128i ls1) {
    const __m256i x = stride ? _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)) : _mm256_set1_epi32(p[0]);
    if (half) return _mm256_sll_epi32(_mm256_add_epi32(x, off), ls1); /* (x + offset) << (left_shift - 1) */
    const __m256i neg = t->above ? _mm256_cmpgt_epi32(x, t->bound) : _mm256_cmpgt_epi32(t->bound, x);
    return rq8(_mm256_sll_epi32(x, k), neg, t);
}

static EM_AVX2 void addsub_avx2(const em_binary_args *a, const addsub_q *q, int wrap) {
    const int n = a->dims[4], s1 = a->s1[4], s2 = a->s2[4], blocked = wrap_end(a, wrap);
    const int half1 = q->half1, half2 = q->half2;
    const addsub_k k1 = addsub_k_make(&q->q1, a->in1_offset, a->left_shift + 1);
    const addsub_k k2 = addsub_k_make(&q->q2, a->in2_offset, a->left_shift + 1);
    const addsub_k ko = addsub_k_make(&q->qo, 0, 0);
    const term8 t1 = term8_make(&k1), t2 = term8_make(&k2), to = term8_make(&ko);
    const __m256i o1 = _mm256_set1_epi32(a->in1_offset), o2 = _mm256_set1_epi32(a->in2_offset);
    const __m256i zo = _mm256_set1_epi32(a->out_offset), zero = _mm256_setzero_si256();
    const __m128i k = _mm_cvtsi32_si128(a->left_shift + 1), ls1 = _mm_cvtsi32_si128(a->left_shift - 1);
    const __m256i lo = _mm256_set1_epi16((short)a->act_min), hi = _mm256_set1_epi16((short)a->act_max);
    const __m256i low16 = _mm256_set1_epi32(0xFFFF);
    EM_BINARY_ROWS(a, {
        int8_t *out = a->out + o;
        int i = 0;
        /* a run of 16 lies wholly before `blocked` (ADD) or no element wraps (SUB) */
        for (; i + 16 <= n; i += 16) {
            __m256i v[2];
            for (int h = 0; h < 2; h++) {
                const long e = i + 8 * h;
                const __m256i sum = _mm256_add_epi32(term8_in(p1 + e * s1, s1, &t1, k, half1, o1, ls1),
                                                     term8_in(p2 + e * s2, s2, &t2, k, half2, o2, ls1));
                v[h] = _mm256_add_epi32(rq8(_mm256_add_epi32(sum, sum), _mm256_cmpgt_epi32(zero, sum), &to), zo);
            }
            /* ADD: the low 16 bits (wrap); SUB: int16 saturation, exact under the int8 clamp */
            __m256i w = wrap ? _mm256_packus_epi32(_mm256_and_si256(v[0], low16), _mm256_and_si256(v[1], low16))
                             : _mm256_packs_epi32(v[0], v[1]);
            w = _mm256_min_epi16(_mm256_max_epi16(_mm256_permute4x64_epi64(w, 0xD8), lo), hi);
            _mm_storeu_si128((__m128i *)(out + i),
                             _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
        }
        for (; i < n; i++) out[i] = addsub_one(a, p1[(long)i * s1], p2[(long)i * s2], i < blocked);
    });
}

/* The same on 16 lanes: the sign fix-up a masked subtraction, the high halves one masked movehdup.  64 outputs
 * are narrowed with two packs (ADD: packus of the low 16 bits, the wrap; SUB: packs, saturation) and one packs to
 * bytes, one permutation restoring the order: a third of the 16-output loop's port-5 narrowing steps. */
typedef struct {
    __m512i m, c, one, bound;
    __m128i r;
    int above;
} term16;

static inline EM_AVX512 term16 term16_make(const addsub_k *k) {
    term16 t = {_mm512_set1_epi32(k->m), _mm512_set1_epi64(k->c), _mm512_set1_epi32(k->one),
                _mm512_set1_epi32(k->neg_below), _mm_cvtsi32_si128(k->r), k->neg_above};
    return t;
}

static inline EM_AVX512 __m512i rq16(__m512i xx, __mmask16 neg, const term16 *t) {
    const __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(xx, t->m), t->c);
    const __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(xx, 32), t->m), t->c);
    const __m512i hm = _mm512_castps_si512(
        _mm512_mask_movehdup_ps(_mm512_castsi512_ps(po), 0x5555, _mm512_castsi512_ps(pe)));
    return _mm512_sra_epi32(_mm512_mask_sub_epi32(hm, neg, hm, t->one), t->r);
}

static inline EM_AVX512 __m512i term16_in(const int8_t *p, int stride, const term16 *t, __m128i k, int half,
                                          __m512i off, __m128i ls1) {
    const __m512i x = stride ? _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)) : _mm512_set1_epi32(p[0]);
    if (half) return _mm512_sll_epi32(_mm512_add_epi32(x, off), ls1);
    const __mmask16 neg = t->above ? _mm512_cmpgt_epi32_mask(x, t->bound) : _mm512_cmplt_epi32_mask(x, t->bound);
    return rq16(_mm512_sll_epi32(x, k), neg, t);
}

static EM_AVX512 void addsub_avx512(const em_binary_args *a, const addsub_q *q, int wrap) {
    const int n = a->dims[4], s1 = a->s1[4], s2 = a->s2[4], blocked = wrap_end(a, wrap);
    const int half1 = q->half1, half2 = q->half2;
    const addsub_k k1 = addsub_k_make(&q->q1, a->in1_offset, a->left_shift + 1);
    const addsub_k k2 = addsub_k_make(&q->q2, a->in2_offset, a->left_shift + 1);
    const addsub_k ko = addsub_k_make(&q->qo, 0, 0);
    const term16 t1 = term16_make(&k1), t2 = term16_make(&k2), to = term16_make(&ko);
    const __m512i o1 = _mm512_set1_epi32(a->in1_offset), o2 = _mm512_set1_epi32(a->in2_offset);
    const __m512i zo = _mm512_set1_epi32(a->out_offset), zero = _mm512_setzero_si512();
    const __m128i k = _mm_cvtsi32_si128(a->left_shift + 1), ls1 = _mm_cvtsi32_si128(a->left_shift - 1);
    const __m256i lo = _mm256_set1_epi16((short)a->act_min), hi = _mm256_set1_epi16((short)a->act_max);
    const __m512i lo512 = _mm512_set1_epi16((short)a->act_min), hi512 = _mm512_set1_epi16((short)a->act_max);
    const __m512i low16 = _mm512_set1_epi32(0xFFFF);
    /* after the two packs, 128-bit lane L holds dwords v0[4L..], v1[4L..], v2[4L..], v3[4L..] */
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    EM_BINARY_ROWS(a, {
        int8_t *out = a->out + o;
        int i = 0;
        for (; i + 64 <= n; i += 64) {
            __m512i v[4];
            for (int b = 0; b < 4; b++) {
                const long e = i + 16 * b;
                const __m512i sum = _mm512_add_epi32(term16_in(p1 + e * s1, s1, &t1, k, half1, o1, ls1),
                                                     term16_in(p2 + e * s2, s2, &t2, k, half2, o2, ls1));
                v[b] = _mm512_add_epi32(rq16(_mm512_add_epi32(sum, sum), _mm512_cmplt_epi32_mask(sum, zero), &to), zo);
            }
            __m512i w01, w23;
            if (wrap) {
                w01 = _mm512_packus_epi32(_mm512_and_si512(v[0], low16), _mm512_and_si512(v[1], low16));
                w23 = _mm512_packus_epi32(_mm512_and_si512(v[2], low16), _mm512_and_si512(v[3], low16));
            } else {
                w01 = _mm512_packs_epi32(v[0], v[1]);
                w23 = _mm512_packs_epi32(v[2], v[3]);
            }
            w01 = _mm512_min_epi16(_mm512_max_epi16(w01, lo512), hi512);
            w23 = _mm512_min_epi16(_mm512_max_epi16(w23, lo512), hi512);
            _mm512_storeu_si512(out + i, _mm512_permutexvar_epi32(perm, _mm512_packs_epi16(w01, w23)));
        }
        for (; i + 16 <= n; i += 16) {
            const __m512i sum = _mm512_add_epi32(term16_in(p1 + (long)i * s1, s1, &t1, k, half1, o1, ls1),
                                                 term16_in(p2 + (long)i * s2, s2, &t2, k, half2, o2, ls1));
            const __m512i v =
                _mm512_add_epi32(rq16(_mm512_add_epi32(sum, sum), _mm512_cmplt_epi32_mask(sum, zero), &to), zo);
            __m256i w = wrap ? _mm512_cvtepi32_epi16(v) : _mm512_cvtsepi32_epi16(v); /* wrap / saturate */
            w = _mm256_min_epi16(_mm256_max_epi16(w, lo), hi);
            _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtsepi16_epi8(w));
        }
        for (; i < n; i++) out[i] = addsub_one(a, p1[(long)i * s1], p2[(long)i * s2], i < blocked);
    });
}
#endif

#ifdef EM_HAVE_NEON
/* 4 input terms from 4 offset inputs (int16) */
static inline int32x4_t term_neon(int16x4_t u, int ls, int32_t mult, int32_t shift, int half) {
    const int32x4_t v = vshlq_s32(vmovl_s16(u), vdupq_n_s32(ls));
    return half ? vshrq_n_s32(v, 1) : em_uq_neon(v, mult, shift);
}

static void addsub_neon(const em_binary_args *a, const addsub_q *k, int wrap) {
    const int n = a->dims[4], s1 = a->s1[4], s2 = a->s2[4], blocked = wrap_end(a, wrap), ls = a->left_shift;
    const int16x8_t o1 = vdupq_n_s16((int16_t)a->in1_offset), o2 = vdupq_n_s16((int16_t)a->in2_offset);
    const int16x8_t zo16 = vdupq_n_s16((int16_t)a->out_offset);
    const int32x4_t zo = vdupq_n_s32(a->out_offset);
    const int16x8_t lo = vdupq_n_s16((int16_t)a->act_min), hi = vdupq_n_s16((int16_t)a->act_max);
    EM_BINARY_ROWS(a, {
        int i = 0;
        for (; i + 16 <= n; i += 16) {
            int16x8_t u1[2], u2[2];
            em_load16_offset_neon(p1 + (s1 ? i : 0), s1, o1, u1);
            em_load16_offset_neon(p2 + (s2 ? i : 0), s2, o2, u2);
            int16x8_t w[2];
            for (int h = 0; h < 2; h++) {
                int32x4_t r[2];
                for (int q = 0; q < 2; q++) {
                    const int16x4_t a1 = q ? vget_high_s16(u1[h]) : vget_low_s16(u1[h]);
                    const int16x4_t a2 = q ? vget_high_s16(u2[h]) : vget_low_s16(u2[h]);
                    const int32x4_t sum = vaddq_s32(term_neon(a1, ls, a->in1_mult, a->in1_shift, k->half1),
                                                    term_neon(a2, ls, a->in2_mult, a->in2_shift, k->half2));
                    r[q] = em_uq_neon(sum, a->out_mult, a->out_shift);
                }
                /* ADD: narrow without saturation, then the zero point in int16 (the interpreter's vmovn and
                 * vaddq_s16: both wrap); SUB: zero point in int32, saturating narrow */
                w[h] = wrap ? vaddq_s16(vcombine_s16(vmovn_s32(r[0]), vmovn_s32(r[1])), zo16)
                            : vcombine_s16(vqmovn_s32(vaddq_s32(r[0], zo)), vqmovn_s32(vaddq_s32(r[1], zo)));
                w[h] = vminq_s16(vmaxq_s16(w[h], lo), hi);
            }
            vst1q_s8(a->out + o + i, vcombine_s8(vqmovn_s16(w[0]), vqmovn_s16(w[1])));
        }
        for (; i < n; i++) a->out[o + i] = addsub_one(a, p1[(long)i * s1], p2[(long)i * s2], i < blocked);
    });
}
#endif

static void addsub(const em_binary_args *a, int wrap) {
    const addsub_q k = addsub_prepare(a);
#ifdef EM_HAVE_AVX2
    if (k.ok && em_isa_get() == EM_ISA_AVX512VNNI) { addsub_avx512(a, &k, wrap); return; }
    if (k.ok && em_isa_get() >= EM_ISA_AVX2) { addsub_avx2(a, &k, wrap); return; }
#endif
#ifdef EM_HAVE_NEON
    if (k.ok && em_isa_get() >= EM_ISA_NEON) { addsub_neon(a, &k, wrap); return; }
#endif
    addsub_portable(a, wrap);
}

void em_add(const void *args) { addsub((const em_binary_args *)args, 1); }

void em_sub(const void *args) { addsub((const em_binary_args *)args, 0); }
