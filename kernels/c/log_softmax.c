/* LOG_SOFTMAX on int8 (output scale 16/256, zero point 127, as the interpreter requires) as its optimized kernel
 * (optimized_ops::LogSoftmax, the registered one): the SOFTMAX table exps (em_softmax_table, beta 1) relative to
 * the row maximum summed in order in float, logf of the sum, then per element
 *     rint(in_scale / out_scale * x - (in_scale * max + log_sum) / out_scale) + 127
 * in float32 (each operation rounded once: -ffp-contract=off), rint rounding half to even as the default float
 * environment, clamped to int8. */
#include <math.h>
#include "requant.h" /* EM_HAVE_AVX2 / EM_AVX2 and the NEON header */

/* rintf for the values LOG_SOFTMAX produces: adding and subtracting 1.5 * 2^23 rounds to an integer, ties to
 * even, exactly as rintf in the default rounding mode for |v| < 2^22 (no library call: x86-64's baseline has no
 * roundss); larger magnitudes go to rintf. */
static inline float rint_even(float v) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return fabsf(v) < 4194304.0f ? (v + magic) - magic : rintf(v);
}

/* The row sums.  Each is the interpreter's sequential float chain, one add's latency per element, so a lone row
 * is latency-bound; up to EM_LS_ROWS rows' chains interleaved, each summed in its own order, keep that many adds
 * in flight at the same bits.  rows is a constant where this is inlined. */
#define EM_LS_ROWS 8
static inline void row_sums(const int8_t *x, int depth, const float *table, const int8_t *maxv, int rows,
                            float *sum) {
    const float *t[EM_LS_ROWS];
    float s[EM_LS_ROWS];
    for (int r = 0; r < rows; r++) t[r] = table + (255 - maxv[r]), s[r] = 0.0f;
    for (int j = 0; j < depth; j++)
        for (int r = 0; r < rows; r++) s[r] += t[r][x[(long)r * depth + j]];
    for (int r = 0; r < rows; r++) sum[r] = s[r];
}

/* 8 rows as 8 scalar chains: GCC's SLP vectorizer would pack the sums into vectors and spend a shuffle per load
 * (same bits, 10-20% slower measured on x86). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-tree-slp-vectorize")))
#endif
static void row_sums8(const int8_t *x, int depth, const float *table, const int8_t *maxv, float *sum) {
    row_sums(x, depth, table, maxv, EM_LS_ROWS, sum);
}

/* A row's constants: log_prob = scale * x - pre; fast when every |log_prob| < 2^22 (then the magic-number
 * rounding holds and the SIMD paths apply). */
typedef struct {
    float scale, pre, zp;
    int fast;
} ls_row;

static inline ls_row row_consts(int8_t max_val, float sum_exp, float in_scale, float out_scale, float zp) {
    ls_row c;
    const float log_sum_exp = logf(sum_exp);
    c.scale = in_scale / out_scale;
    c.pre = (in_scale * (float)max_val + log_sum_exp) / out_scale;
    c.zp = zp;
    c.fast = fabsf(c.scale) * 128.0f + fabsf(c.pre) < 4000000.0f;
    return c;
}

/* Outputs j0..depth of a row, one at a time (the reference form every vector path reproduces lane by lane). */
static inline void row_out_scalar(const int8_t *x, int8_t *y, int j0, int depth, const ls_row *c) {
    if (c->fast) { /* branch-free */
        const float magic = 12582912.0f;
        for (int j = j0; j < depth; j++) {
            const float q = ((c->scale * (float)x[j] - c->pre) + magic) - magic + c->zp;
            y[j] = (int8_t)(int32_t)(q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q));
        }
    } else {
        for (int j = j0; j < depth; j++) {
            const float q = rint_even(c->scale * (float)x[j] - c->pre) + c->zp;
            y[j] = (int8_t)(q < -128.0f ? -128 : (q > 127.0f ? 127 : (int32_t)q));
        }
    }
}

/* row_out_scalar's fast form with the clamp after the (exact) integer conversion; inlined where it is used (the
 * 256-value loop vectorizes only then). */
static inline __attribute__((always_inline)) int8_t fast_one(const ls_row *c, int x) {
    const float magic = 12582912.0f;
    const int32_t q = (int32_t)(((c->scale * (float)x - c->pre) + magic) - magic + c->zp);
    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}

/* Byte lookups, one at a time, unrolled (15% less time): GCC's vectorizer would assemble 16 looked-up bytes in two
 * general registers and reload them as one vector, a store-forwarding stall per 16 bytes (a third of the portable
 * kernel's time). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-tree-vectorize"))) /* inlined, the caller's options would apply */
#endif
static void lookup(const int8_t *restrict x, int8_t *restrict y, int n, const int8_t *restrict t) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
    for (int j = 0; j < n; j++) y[j] = t[(uint8_t)x[j]];
}

/* Portable: an output is a function of its input byte, so a long row is cheaper as 256 evaluations of that
 * function (row_out_scalar on the 256 values: the same bits) and one lookup per element. */
static inline void row_out_portable(const int8_t *x, int8_t *y, int depth, const ls_row *c) {
    if (depth < 512) {
        row_out_scalar(x, y, 0, depth, c);
        return;
    }
    int8_t t[256]; /* t[b]: the output of the byte b, (int8_t)b */
    if (c->fast) {
        /* row_out_scalar's fast form on the 256 values, written for the vectorizer: non-negative bytes then
         * negative ones, the clamp after the (exact) integer conversion */
        for (int b = 0; b < 128; b++) t[b] = fast_one(c, b);
        for (int b = -128; b < 0; b++) t[b + 256] = fast_one(c, b);
    } else {
        int8_t v[256];
        for (int b = 0; b < 256; b++) v[b] = (int8_t)b;
        row_out_scalar(v, t, 0, 256, c);
    }
    lookup(x, y, depth, t);
}

static inline int8_t row_max(const int8_t *x, int depth) {
    int8_t m = -128;
    for (int j = 0; j < depth; j++) m = x[j] > m ? x[j] : m;
    return m;
}

#ifdef EM_HAVE_AVX2
/* 8 lanes of row_out_scalar's fast form: the same float operations in the same order (no contraction:
 * -ffp-contract=off), clamped in float, then exact integer conversion. */
static inline EM_AVX2 __m256i out8_avx2(__m128i x8, __m256 scale, __m256 pre, __m256 zp) {
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    const __m256 xf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x8));
    __m256 q = _mm256_add_ps(_mm256_sub_ps(_mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(scale, xf), pre), magic), magic),
                             zp);
    q = _mm256_min_ps(_mm256_max_ps(q, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvttps_epi32(q);
}

static EM_AVX2 int8_t row_max_avx2(const int8_t *x, int depth) { return row_max(x, depth); } /* vpmaxsb */

static EM_AVX2 void row_out_avx2(const int8_t *x, int8_t *y, int depth, const ls_row *c) {
    const __m256 scale = _mm256_set1_ps(c->scale), pre = _mm256_set1_ps(c->pre), zp = _mm256_set1_ps(c->zp);
    int j = 0;
    if (c->fast)
        for (; j + 16 <= depth; j += 16) {
            const __m128i x16 = _mm_loadu_si128((const __m128i *)(x + j));
            const __m256i a = out8_avx2(x16, scale, pre, zp), b = out8_avx2(_mm_srli_si128(x16, 8), scale, pre, zp);
            const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8); /* 16 int16 in order */
            _mm_storeu_si128((__m128i *)(y + j),
                             _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
        }
    row_out_scalar(x, y, j, depth, c);
}

static EM_AVX512 int8_t row_max_avx512(const int8_t *x, int depth) { return row_max(x, depth); }

static EM_AVX512 void row_out_avx512(const int8_t *x, int8_t *y, int depth, const ls_row *c) {
    const __m512 scale = _mm512_set1_ps(c->scale), pre = _mm512_set1_ps(c->pre), zp = _mm512_set1_ps(c->zp);
    const __m512 magic = _mm512_set1_ps(12582912.0f), lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
    int j = 0;
    if (c->fast)
        for (; j + 16 <= depth; j += 16) {
            const __m512 xf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(x + j))));
            __m512 q = _mm512_add_ps(_mm512_sub_ps(_mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(scale, xf), pre), magic),
                                                   magic), zp);
            q = _mm512_min_ps(_mm512_max_ps(q, lo), hi);
            _mm_storeu_si128((__m128i *)(y + j), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(q)));
        }
    row_out_scalar(x, y, j, depth, c);
}
#endif

#ifdef EM_HAVE_NEON
/* 16 outputs as 4 x 4 lanes, row_out_scalar's fast form operation by operation (vmulq/vsubq are not fused:
 * -ffp-contract=off); vcvtq_s32_f32 truncates, exact on these integers. */
static void row_out_neon(const int8_t *x, int8_t *y, int depth, const ls_row *c) {
    const float32x4_t scale = vdupq_n_f32(c->scale), pre = vdupq_n_f32(c->pre), zp = vdupq_n_f32(c->zp);
    const float32x4_t magic = vdupq_n_f32(12582912.0f), lo = vdupq_n_f32(-128.0f), hi = vdupq_n_f32(127.0f);
    int j = 0;
    if (c->fast)
        for (; j + 16 <= depth; j += 16) {
            const int8x16_t x16 = vld1q_s8(x + j);
            const int16x8_t h[2] = {vmovl_s8(vget_low_s8(x16)), vmovl_high_s8(x16)};
            int16x8_t w[2];
            for (int k = 0; k < 2; k++) {
                int32x4_t r[2];
                for (int q = 0; q < 2; q++) {
                    const float32x4_t xf = vcvtq_f32_s32(q ? vmovl_high_s16(h[k]) : vmovl_s16(vget_low_s16(h[k])));
                    float32x4_t v = vaddq_f32(vsubq_f32(vaddq_f32(vsubq_f32(vmulq_f32(scale, xf), pre), magic), magic),
                                              zp);
                    r[q] = vcvtq_s32_f32(vminq_f32(vmaxq_f32(v, lo), hi));
                }
                w[k] = vcombine_s16(vmovn_s32(r[0]), vmovn_s32(r[1]));
            }
            vst1q_s8(y + j, vcombine_s8(vmovn_s16(w[0]), vmovn_s16(w[1])));
        }
    row_out_scalar(x, y, j, depth, c);
}
#endif

void em_log_softmax(const void *args) {
    const em_log_softmax_args *a = (const em_log_softmax_args *)args;
    const int outer = a->outer, depth = a->depth;
    const float in_scale = a->in_scale, out_scale = a->out_scale, zp = (float)a->out_zp;
    const float *table = a->table;
    const int8_t *x = a->in;
    int8_t *y = a->out; /* locals: int8_t stores may alias anything, *a included */
    const int isa = em_isa_get();
    for (int i = 0; i < outer;) {
        const int rows = outer - i >= EM_LS_ROWS ? EM_LS_ROWS : outer - i >= 4 ? 4 : 1;
        int8_t maxv[EM_LS_ROWS];
        float sum[EM_LS_ROWS];
        for (int r = 0; r < rows; r++) {
            const int8_t *xr = x + (long)r * depth;
#ifdef EM_HAVE_AVX2
            if (isa == EM_ISA_AVX512VNNI) maxv[r] = row_max_avx512(xr, depth);
            else if (isa >= EM_ISA_AVX2) maxv[r] = row_max_avx2(xr, depth);
            else
#endif
                maxv[r] = row_max(xr, depth);
        }
        if (rows == EM_LS_ROWS) row_sums8(x, depth, table, maxv, sum);
        else if (rows == 4) row_sums(x, depth, table, maxv, 4, sum);
        else row_sums(x, depth, table, maxv, 1, sum);
        for (int r = 0; r < rows; r++) {
            const ls_row c = row_consts(maxv[r], sum[r], in_scale, out_scale, zp);
            const int8_t *xr = x + (long)r * depth;
            int8_t *yr = y + (long)r * depth;
#ifdef EM_HAVE_AVX2
            if (isa == EM_ISA_AVX512VNNI) { row_out_avx512(xr, yr, depth, &c); continue; }
            if (isa >= EM_ISA_AVX2) { row_out_avx2(xr, yr, depth, &c); continue; }
#endif
#ifdef EM_HAVE_NEON
            if (isa >= EM_ISA_NEON) { row_out_neon(xr, yr, depth, &c); continue; }
#endif
            row_out_portable(xr, yr, depth, &c);
        }
        i += rows, x += (long)rows * depth, y += (long)rows * depth;
    }
}
