/* AVERAGE_POOL_2D and MAX_POOL_2D (int8, same scale in and out).  The window
 * is clipped to the image; the average divides by the clipped count, rounding
 * half away from zero, as TFLite does.  Channels are innermost (in chunks of
 * 64); SIMD paths (AVX2, NEON) take 16 channels at a time, the scalar loop the
 * rest of a chunk.
 *
 * The SIMD average divides in float: with count < 2^16 the sum s and
 * s +- count/2 are exact floats, |quotient| < 2^8, so its float error is below
 * 2^-17 < 1/count, the least distance from a non-integer quotient to an
 * integer: truncating the rounded quotient truncates the exact one. */
#include "requant.h"

#define CHUNK 64

/* The body (the macro's arguments: it may hold commas) runs per output pixel and channel chunk with: PX(fy, fx) giving the
 * input pixel pointer, fy0..fy1 / fx0..fx1 the clipped window, out, c0, nc. */
#define POOL_PIXELS(...)                                                                        \
    for (int b = 0; b < a->batch; b++)                                                          \
        for (int oy = 0; oy < a->out_h; oy++)                                                   \
            for (int ox = 0; ox < a->out_w; ox++) {                                             \
                const int y0 = oy * a->stride_h - a->pad_top, x0 = ox * a->stride_w - a->pad_left; \
                const int fy0 = y0 < 0 ? -y0 : 0, fx0 = x0 < 0 ? -x0 : 0;                       \
                const int fy1 = a->in_h - y0 < a->k_h ? a->in_h - y0 : a->k_h;                  \
                const int fx1 = a->in_w - x0 < a->k_w ? a->in_w - x0 : a->k_w;                  \
                const int8_t *base = a->in + (((size_t)b * a->in_h + y0) * a->in_w + x0) * a->channels; \
                int8_t *out = a->out + (((size_t)b * a->out_h + oy) * a->out_w + ox) * a->channels; \
                for (int c0 = 0; c0 < a->channels; c0 += CHUNK) {                               \
                    const int nc = a->channels - c0 < CHUNK ? a->channels - c0 : CHUNK;        \
                    __VA_ARGS__                                                                 \
                }                                                                               \
            }

#define PX(fy, fx) (base + ((long)(fy) * a->in_w + (fx)) * a->channels + c0)

/* The window of one output pixel: channels c0.. of the pixels (fy, fx) in [fy0, fy1) x [fx0, fx1). */
typedef struct {
    const int8_t *base;
    int fy0, fy1, fx0, fx1, c0;
} pool_win;

#define WIN_PX(a, w, fy, fx) ((w)->base + ((long)(fy) * (a)->in_w + (fx)) * (a)->channels + (w)->c0)

static inline int8_t clamp(int32_t v, const em_pool_args *a) {
    return (int8_t)(v < a->act_min ? a->act_min : (v > a->act_max ? a->act_max : v));
}

#ifdef EM_HAVE_AVX2
/* 16 channels per step of the chunk's nc; returns how many it did. */
static EM_AVX2 int avg_avx2(const em_pool_args *a, const pool_win *w, int nc, int8_t *out) {
    const int count = (w->fy1 - w->fy0) * (w->fx1 - w->fx0);
    if (count <= 0) return 0;
    const __m256 cf = _mm256_set1_ps((float)count);
    const __m256i half = _mm256_set1_epi32(count / 2), nhalf = _mm256_set1_epi32(-(count / 2));
    const __m256i zero = _mm256_setzero_si256();
    const __m256i lo = _mm256_set1_epi32(a->act_min), hi = _mm256_set1_epi32(a->act_max);
    int c = 0;
    for (; c + 16 <= nc; c += 16) {
        __m256i s0 = zero, s1 = zero;
        for (int fy = w->fy0; fy < w->fy1; fy++)
            for (int fx = w->fx0; fx < w->fx1; fx++) {
                const __m128i v = _mm_loadu_si128((const __m128i *)(WIN_PX(a, w, fy, fx) + c));
                s0 = _mm256_add_epi32(s0, _mm256_cvtepi8_epi32(v));
                s1 = _mm256_add_epi32(s1, _mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)));
            }
        __m256i q[2];
        for (int k = 0; k < 2; k++) {
            const __m256i s = k ? s1 : s0;
            const __m256i r = _mm256_add_epi32(s, _mm256_blendv_epi8(nhalf, half, _mm256_cmpgt_epi32(s, zero)));
            q[k] = _mm256_cvttps_epi32(_mm256_div_ps(_mm256_cvtepi32_ps(r), cf));
            q[k] = _mm256_min_epi32(_mm256_max_epi32(q[k], lo), hi);
        }
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8);
        _mm_storeu_si128((__m128i *)(out + c), _mm_packs_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1)));
    }
    return c;
}

static EM_AVX2 int max_avx2(const em_pool_args *a, const pool_win *w, int nc, int8_t *out) {
    const __m128i lo = _mm_set1_epi8((char)a->act_min), hi = _mm_set1_epi8((char)a->act_max);
    int c = 0;
    for (; c + 16 <= nc; c += 16) {
        __m128i m = _mm_set1_epi8(-128);
        for (int fy = w->fy0; fy < w->fy1; fy++)
            for (int fx = w->fx0; fx < w->fx1; fx++)
                m = _mm_max_epi8(m, _mm_loadu_si128((const __m128i *)(WIN_PX(a, w, fy, fx) + c)));
        _mm_storeu_si128((__m128i *)(out + c), _mm_min_epi8(_mm_max_epi8(m, lo), hi));
    }
    return c;
}
#endif

#ifdef EM_HAVE_NEON
static int avg_neon(const em_pool_args *a, const pool_win *w, int nc, int8_t *out) {
    const int count = (w->fy1 - w->fy0) * (w->fx1 - w->fx0);
    if (count <= 0) return 0;
    const float32x4_t cf = vdupq_n_f32((float)count);
    const int32x4_t half = vdupq_n_s32(count / 2), nhalf = vdupq_n_s32(-(count / 2));
    const int32x4_t lo = vdupq_n_s32(a->act_min), hi = vdupq_n_s32(a->act_max);
    int c = 0;
    for (; c + 16 <= nc; c += 16) {
        int32x4_t s[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
        for (int fy = w->fy0; fy < w->fy1; fy++)
            for (int fx = w->fx0; fx < w->fx1; fx++) {
                const int8x16_t v = vld1q_s8(WIN_PX(a, w, fy, fx) + c);
                const int16x8_t l = vmovl_s8(vget_low_s8(v)), h = vmovl_high_s8(v);
                s[0] = vaddw_s16(s[0], vget_low_s16(l));
                s[1] = vaddw_high_s16(s[1], l);
                s[2] = vaddw_s16(s[2], vget_low_s16(h));
                s[3] = vaddw_high_s16(s[3], h);
            }
        int16x4_t n[4];
        for (int k = 0; k < 4; k++) {
            const int32x4_t r = vaddq_s32(s[k], vbslq_s32(vcgtq_s32(s[k], vdupq_n_s32(0)), half, nhalf));
            const int32x4_t q = vcvtq_s32_f32(vdivq_f32(vcvtq_f32_s32(r), cf)); /* truncates toward zero */
            n[k] = vmovn_s32(vminq_s32(vmaxq_s32(q, lo), hi));
        }
        vst1q_s8(out + c, vcombine_s8(vmovn_s16(vcombine_s16(n[0], n[1])), vmovn_s16(vcombine_s16(n[2], n[3]))));
    }
    return c;
}

static int max_neon(const em_pool_args *a, const pool_win *w, int nc, int8_t *out) {
    const int8x16_t lo = vdupq_n_s8((int8_t)a->act_min), hi = vdupq_n_s8((int8_t)a->act_max);
    int c = 0;
    for (; c + 16 <= nc; c += 16) {
        int8x16_t m = vdupq_n_s8(-128);
        for (int fy = w->fy0; fy < w->fy1; fy++)
            for (int fx = w->fx0; fx < w->fx1; fx++) m = vmaxq_s8(m, vld1q_s8(WIN_PX(a, w, fy, fx) + c));
        vst1q_s8(out + c, vminq_s8(vmaxq_s8(m, lo), hi));
    }
    return c;
}
#endif

typedef int (*pool_simd_fn)(const em_pool_args *, const pool_win *, int, int8_t *);

/* The SIMD chunk body for this path, or NULL (portable; or the float division's count bound). */
static pool_simd_fn pool_simd(const em_pool_args *a, int average) {
    if (average && (long)a->k_h * a->k_w >= (1L << 16)) return NULL;
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2) return average ? avg_avx2 : max_avx2;
#endif
#ifdef EM_HAVE_NEON
    if (em_isa_get() >= EM_ISA_NEON) return average ? avg_neon : max_neon;
#endif
    (void)a;
    return NULL;
}

void em_average_pool(const void *args) {
    const em_pool_args *a = (const em_pool_args *)args;
    const pool_simd_fn simd = pool_simd(a, 1);
    int32_t acc[CHUNK];
    POOL_PIXELS({
        const pool_win w = {base, fy0, fy1, fx0, fx1, c0};
        const int done = simd ? simd(a, &w, nc, out + c0) : 0;
        const int count = (fy1 - fy0) * (fx1 - fx0);
        for (int c = done; c < nc; c++) acc[c] = 0;
        for (int fy = fy0; fy < fy1; fy++)
            for (int fx = fx0; fx < fx1; fx++) {
                const int8_t *px = PX(fy, fx);
                for (int c = done; c < nc; c++) acc[c] += px[c];
            }
        for (int c = done; c < nc; c++) {
            int32_t s = acc[c];
            int32_t avg = count == 0 ? 0 : (s > 0 ? (s + count / 2) / count : (s - count / 2) / count);
            out[c0 + c] = clamp(avg, a);
        }
    })
}

void em_max_pool(const void *args) {
    const em_pool_args *a = (const em_pool_args *)args;
    const pool_simd_fn simd = pool_simd(a, 0);
    int8_t m[CHUNK];
    POOL_PIXELS({
        const pool_win w = {base, fy0, fy1, fx0, fx1, c0};
        const int done = simd ? simd(a, &w, nc, out + c0) : 0;
        for (int c = done; c < nc; c++) m[c] = -128;
        for (int fy = fy0; fy < fy1; fy++)
            for (int fx = fx0; fx < fx1; fx++) {
                const int8_t *px = PX(fy, fx);
                for (int c = done; c < nc; c++) m[c] = px[c] > m[c] ? px[c] : m[c];
            }
        for (int c = done; c < nc; c++) out[c0 + c] = clamp(m[c], a);
    })
}
