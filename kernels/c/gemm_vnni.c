/* VNNI paths of the int8 GEMM (CONV_2D via im2col, FULLY_CONNECTED):
 * vpdpbusd multiplies unsigned bytes by signed bytes and adds each group of 4
 * products to an int32 lane, so the activations go in as u = x + 128 (the
 * int8 input with its sign bit flipped) and the weights as int8.  Since
 *     sum_k (x + in_offset) w = sum_k u w + (in_offset - 128) sum_k w,
 * each accumulator starts at bias + (in_offset - 128) * colsum and the int32
 * sums are exactly those of the int16 paths (integer sums wrap the same way in
 * any order), so the output stage sees the same accumulators and the bytes
 * stay those of the interpreter.  Padding taps hold the input's zero point,
 * i.e. u = 128 - in_offset, which adds nothing after the correction.
 *
 * Two paths, chosen by em_isa_get(): AVX-512 VNNI (a 16-channel panel of 4
 * k is one zmm) and AVX-VNNI (the VEX form on ymm: a panel is two ymm).  Each
 * is compiled with a target attribute, so the build stays portable. */
#include <string.h>
#include "requant.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef EM_HAVE_AVX2

typedef struct {
    int N, K4;                 /* K4: bytes per A row (K rounded up to 4) */
    const uint8_t *a;          /* rows of u = x + 128 */
    const int8_t *w;           /* [ceil(N/16)][K4/4][16][4] */
    const int32_t *colsum, *bias;
    int32_t corr;              /* in_offset - 128 */
    const em_requant *rq;
    int8_t *out;
    int ldo;
} gemm8;

static inline int32_t load_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ---- operand preparation: y = x ^ 0x80 (u = x + 128) ---- */
static EM_AVX2 void flip_avx2(const int8_t *x, uint8_t *y, size_t n) {
    const __m256i s = _mm256_set1_epi8((char)0x80);
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + i)), s));
    for (; i < n; i++) y[i] = (uint8_t)x[i] ^ 0x80u;
}

/* Short runs (a few channels per tap) inline, 8 bytes at a time: a call costs more. */
static inline void flip(const int8_t *x, uint8_t *y, int n) {
    if (n >= 32) {
        flip_avx2(x, y, (size_t)n);
        return;
    }
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, x + i, 8);
        v ^= 0x8080808080808080ull;
        memcpy(y + i, &v, 8);
    }
    for (; i < n; i++) y[i] = (uint8_t)x[i] ^ 0x80u;
}

/* y[0..n) = x ^ 0x80 for n <= 32 as whole 16-byte blocks (SSE2), writing up to
 * 31 bytes past y + n; not done (returns 0) when that would read past x_end. */
static inline int flip_over(const int8_t *x, uint8_t *y, int n, const int8_t *x_end) {
    const __m128i s = _mm_set1_epi8((char)0x80);
    if (n <= 16 && x + 16 <= x_end) {
        _mm_storeu_si128((__m128i *)y, _mm_xor_si128(_mm_loadu_si128((const __m128i *)x), s));
        return 1;
    }
    if (n <= 32 && x + 32 <= x_end) {
        _mm_storeu_si128((__m128i *)y, _mm_xor_si128(_mm_loadu_si128((const __m128i *)x), s));
        _mm_storeu_si128((__m128i *)(y + 16), _mm_xor_si128(_mm_loadu_si128((const __m128i *)(x + 16)), s));
        return 1;
    }
    return 0;
}

/* Rows m0..m1 of the im2col matrix as u8 (kernels/c/im2col_u8.h), twice: with
 * 8-byte flips for short runs, and, on the AVX-512 path, with one masked
 * load/xor/store per run of up to 64 bytes (a tap of a few channels). */
#define IM2COL_NAME im2col_u8
#define IM2COL_ATTR
#define IM2COL_FLIP flip
#include "im2col_u8.h"
#undef IM2COL_NAME
#undef IM2COL_ATTR
#undef IM2COL_FLIP

#define EM_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define EM_ALWAYS_INLINE inline __attribute__((always_inline))

static EM_AVX512VNNI EM_ALWAYS_INLINE void flip512(const int8_t *x, uint8_t *y, int n) {
    const __m512i s = _mm512_set1_epi8((char)0x80);
    int i = 0;
    for (; i + 64 <= n; i += 64)
        _mm512_storeu_si512((void *)(y + i), _mm512_xor_si512(_mm512_loadu_si512((const void *)(x + i)), s));
    if (i < n) { /* masked: no byte outside the run is read or written */
        __mmask64 k = (__mmask64)((1ULL << (n - i)) - 1);
        _mm512_mask_storeu_epi8(y + i, k, _mm512_xor_si512(_mm512_maskz_loadu_epi8(k, x + i), s));
    }
}

#define IM2COL_NAME im2col_u8_512
#define IM2COL_ATTR EM_AVX512VNNI
#define IM2COL_FLIP flip512
#include "im2col_u8.h"
#undef IM2COL_NAME
#undef IM2COL_ATTR
#undef IM2COL_FLIP

/* ---- AVX-512 VNNI: MR rows x NP panels of 16 channels per tile ---- */
/* em_requant16_avx2 on one zmm: the same arithmetic lane for lane (see em_mbqm_avx2 in requant.h).
 * What depends on the channel only is prepared once per tile (rq512_prep), not per row. */
typedef struct {
    __m512i mult, mult_odd, left, right, bit_shift, bit_mask;
    __m512i round_even, round_odd, shift_even, shift_odd; /* 64-bit lanes: the one-step ties-up form */
    __mmask16 up;  /* lanes that round ties up (ruy); the others away from zero */
    int c0, n;
} rq512;

static EM_AVX512VNNI EM_ALWAYS_INLINE void rq512_prep(rq512 *q, const gemm8 *g, int c0) {
    const em_requant *rq = g->rq;
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
    const __m512i shift = _mm512_loadu_si512((const void *)(rq->shift + c0));
    q->mult = _mm512_loadu_si512((const void *)(rq->mult + c0));
    q->mult_odd = _mm512_srli_epi64(q->mult, 32);
    q->left = _mm512_max_epi32(shift, zero);
    q->right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
    q->bit_shift = _mm512_max_epi32(_mm512_sub_epi32(q->right, one), zero);
    q->bit_mask = _mm512_min_epi32(q->right, one);
    q->up = c0 >= rq->round_up_below ? 0
            : c0 + 16 <= rq->round_up_below ? 0xFFFF
            : (__mmask16)((1u << (rq->round_up_below - c0)) - 1);
    /* ties up in one step: floor((floor(A / 2^31) + 2^(r-1)) / 2^r) = floor((A + 2^(30+r)) / 2^(31+r)) for
     * A = x * mult + 2^30 and r >= 1 (the floor of a floor), and hm itself for r = 0; |A + ...| < 2^63 */
    const __m512i lo32 = _mm512_set1_epi64(0xFFFFFFFFLL), one64 = _mm512_set1_epi64(1);
    const __m512i r_even = _mm512_and_si512(q->right, lo32), r_odd = _mm512_srli_epi64(q->right, 32);
    const __m512i half = _mm512_set1_epi64(1LL << 30), thirty = _mm512_set1_epi64(30);
    q->round_even = _mm512_add_epi64(half, _mm512_maskz_sllv_epi64(_mm512_cmpgt_epi64_mask(r_even, zero), one64,
                                                                   _mm512_add_epi64(r_even, thirty)));
    q->round_odd = _mm512_add_epi64(half, _mm512_maskz_sllv_epi64(_mm512_cmpgt_epi64_mask(r_odd, zero), one64,
                                                                  _mm512_add_epi64(r_odd, thirty)));
    q->shift_even = _mm512_add_epi64(r_even, _mm512_set1_epi64(31));
    q->shift_odd = _mm512_add_epi64(r_odd, _mm512_set1_epi64(31));
    q->c0 = c0;
    q->n = g->N - c0 < EM_NR ? g->N - c0 : EM_NR;
}

static EM_AVX512VNNI EM_ALWAYS_INLINE void store512(__m512i x, const rq512 *q, const em_requant *rq, int8_t *out) {
    x = _mm512_sllv_epi32(x, q->left);
    __m512i v;
    if (q->up == 0xFFFF) { /* every lane ties up (conv, FC): the one-step form in 64-bit lanes */
        __m512i e = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, q->mult), q->round_even), q->shift_even);
        __m512i o = _mm512_srav_epi64(
            _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), q->mult_odd), q->round_odd), q->shift_odd);
        v = _mm512_mask_blend_epi32(0xAAAA, e, _mm512_slli_epi64(o, 32));
    } else { /* ties away from zero, then the round-up lanes (if any): (hm >> right) + bit (right - 1) of hm */
        const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi64(1LL << 30);
        __m512i p_even = _mm512_add_epi64(_mm512_mul_epi32(x, q->mult), half);
        __m512i p_odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), q->mult_odd), half);
        __m512i hm = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(p_even, 31), _mm512_slli_epi64(p_odd, 1));
        __m512i res = _mm512_srav_epi32(hm, q->right);
        __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, q->right), one);
        __m512i rem = _mm512_and_si512(hm, mask);
        __m512i thr = _mm512_sub_epi32(_mm512_srai_epi32(mask, 1), _mm512_srai_epi32(hm, 31));
        v = _mm512_mask_add_epi32(res, _mm512_cmpgt_epi32_mask(rem, thr), res, one);
        if (q->up)
            v = _mm512_mask_add_epi32(v, q->up, res, _mm512_and_si512(_mm512_srav_epi32(hm, q->bit_shift), q->bit_mask));
    }
    /* clamp to [act_min, act_max] before adding zp (no int32 overflow), then narrow */
    v = _mm512_max_epi32(_mm512_min_epi32(v, _mm512_set1_epi32(rq->act_max - rq->zp)),
                         _mm512_set1_epi32(rq->act_min - rq->zp));
    __m128i b = _mm512_cvtepi32_epi8(_mm512_add_epi32(v, _mm512_set1_epi32(rq->zp)));
    if (q->n == 16)
        _mm_storeu_si128((__m128i *)out, b);
    else
        _mm_mask_storeu_epi8(out, (__mmask16)((1u << q->n) - 1), b);
}

static EM_AVX512VNNI EM_ALWAYS_INLINE void tile512(const gemm8 *g, int m, int nb, const int MR, const int NP) {
    __m512i acc[MR][NP];
    const __m512i corr = _mm512_set1_epi32(g->corr);
    const int8_t *wp[NP];
    for (int p = 0; p < NP; p++) {
        const int c0 = (nb + p) * EM_NR;
        __m512i b = _mm512_add_epi32(_mm512_loadu_si512((const void *)(g->bias + c0)),
                                     _mm512_mullo_epi32(corr, _mm512_loadu_si512((const void *)(g->colsum + c0))));
        for (int r = 0; r < MR; r++) acc[r][p] = b;
        wp[p] = g->w + (size_t)(nb + p) * g->K4 * EM_NR;
    }
    const uint8_t *ar = g->a + (size_t)m * g->K4;
    int k = 0;
    if (MR == 1) {
        /* one row (FULLY_CONNECTED on one input, tails): NP chains alone would wait on vpdpbusd's latency,
         * so 4 k-groups go to 4 accumulator sets, added at the end (integer sums: the same bytes) */
        __m512i s1[NP], s2[NP], s3[NP];
        for (int p = 0; p < NP; p++) s1[p] = s2[p] = s3[p] = _mm512_setzero_si512();
        for (; k + 16 <= g->K4; k += 16) {
            __m512i x0 = _mm512_set1_epi32(load_i32(ar + k)), x1 = _mm512_set1_epi32(load_i32(ar + k + 4));
            __m512i x2 = _mm512_set1_epi32(load_i32(ar + k + 8)), x3 = _mm512_set1_epi32(load_i32(ar + k + 12));
            for (int p = 0; p < NP; p++) {
                const int8_t *w = wp[p] + (size_t)k * EM_NR;
                acc[0][p] = _mm512_dpbusd_epi32(acc[0][p], x0, _mm512_loadu_si512((const void *)w));
                s1[p] = _mm512_dpbusd_epi32(s1[p], x1, _mm512_loadu_si512((const void *)(w + 64)));
                s2[p] = _mm512_dpbusd_epi32(s2[p], x2, _mm512_loadu_si512((const void *)(w + 128)));
                s3[p] = _mm512_dpbusd_epi32(s3[p], x3, _mm512_loadu_si512((const void *)(w + 192)));
            }
        }
        for (int p = 0; p < NP; p++)
            acc[0][p] = _mm512_add_epi32(_mm512_add_epi32(acc[0][p], s1[p]), _mm512_add_epi32(s2[p], s3[p]));
    }
    for (; k < g->K4; k += 4) {
        __m512i wv[NP];
        for (int p = 0; p < NP; p++) wv[p] = _mm512_loadu_si512((const void *)(wp[p] + (size_t)k * EM_NR));
        for (int r = 0; r < MR; r++) {
            __m512i x = _mm512_set1_epi32(load_i32(ar + (size_t)r * g->K4 + k));
            for (int p = 0; p < NP; p++) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], x, wv[p]);
        }
    }
    rq512 q[NP];
    for (int p = 0; p < NP; p++) rq512_prep(&q[p], g, (nb + p) * EM_NR);
    for (int r = 0; r < MR; r++)
        for (int p = 0; p < NP; p++) store512(acc[r][p], &q[p], g->rq, g->out + (size_t)(m + r) * g->ldo + q[p].c0);
}

/* Rows m0..m1 for panels nb..nb+NP: as many MR-row tiles as fit, then 4-row, then single rows. */
#define ROWS512(MR, NP)                                                  \
    do {                                                                 \
        int m = m0;                                                      \
        for (; m + (MR) <= m1; m += (MR)) tile512(g, m, nb, (MR), (NP)); \
        for (; m + 4 <= m1; m += 4) tile512(g, m, nb, 4, (NP));          \
        for (; m < m1; m++) tile512(g, m, nb, 1, (NP));                  \
    } while (0)

static EM_AVX512VNNI void gemm_avx512vnni(const gemm8 *g, int m0, int m1) {
    const int nblocks = (g->N + EM_NR - 1) / EM_NR;
    int nb = 0;
    /* enough independent accumulators to cover vpdpbusd's latency (~5 cycles, 2 a cycle) */
    for (; nb + 4 <= nblocks; nb += 4) ROWS512(4, 4);
    if (nblocks - nb == 3) ROWS512(4, 3);
    else if (nblocks - nb == 2) ROWS512(8, 2);
    else if (nblocks - nb == 1) ROWS512(8, 1);
}

/* ---- AVX-VNNI (VEX, 256-bit): MR rows x one panel (two ymm: channels 0-7, 8-15) ---- */
#ifdef EM_HAVE_AVXVNNI
#define EM_AVXVNNI __attribute__((target("avxvnni,avx2,fma")))

/* NH = 2: both halves of the panel; NH = 1: channels 0-7 only (the last panel holds <= 8). */
static EM_AVXVNNI EM_ALWAYS_INLINE void tile256(const gemm8 *g, int m, int nb, const int MR, const int NH) {
    __m256i acc[MR][2];
    const __m256i corr = _mm256_set1_epi32(g->corr);
    const int c0 = nb * EM_NR;
    const int8_t *wp = g->w + (size_t)nb * g->K4 * EM_NR;
    for (int h = 0; h < NH; h++) {
        __m256i b = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(g->bias + c0 + 8 * h)),
                                     _mm256_mullo_epi32(corr, _mm256_loadu_si256((const __m256i *)(g->colsum + c0 + 8 * h))));
        for (int r = 0; r < MR; r++) acc[r][h] = b;
    }
    const uint8_t *ar = g->a + (size_t)m * g->K4;
    int k = 0;
    if (MR == 1) { /* one row: 2 accumulator sets over k, as tile512 (vpdpbusd latency) */
        __m256i s1[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (; k + 8 <= g->K4; k += 8) {
            __m256i x0 = _mm256_set1_epi32(load_i32(ar + k)), x1 = _mm256_set1_epi32(load_i32(ar + k + 4));
            for (int h = 0; h < NH; h++) {
                const int8_t *w = wp + (size_t)k * EM_NR + 32 * h;
                acc[0][h] = _mm256_dpbusd_avx_epi32(acc[0][h], x0, _mm256_loadu_si256((const __m256i *)w));
                s1[h] = _mm256_dpbusd_avx_epi32(s1[h], x1, _mm256_loadu_si256((const __m256i *)(w + 64)));
            }
        }
        for (int h = 0; h < NH; h++) acc[0][h] = _mm256_add_epi32(acc[0][h], s1[h]);
    }
    for (; k < g->K4; k += 4) {
        __m256i wv[2];
        for (int h = 0; h < NH; h++) wv[h] = _mm256_loadu_si256((const __m256i *)(wp + (size_t)k * EM_NR + 32 * h));
        for (int r = 0; r < MR; r++) {
            __m256i x = _mm256_set1_epi32(load_i32(ar + (size_t)r * g->K4 + k));
            for (int h = 0; h < NH; h++) acc[r][h] = _mm256_dpbusd_avx_epi32(acc[r][h], x, wv[h]);
        }
    }
    const int n = g->N - c0 < EM_NR ? g->N - c0 : EM_NR;
    for (int r = 0; r < MR; r++)
        em_requant16_avx2(acc[r][0], NH == 2 ? acc[r][1] : _mm256_setzero_si256(), g->rq, c0, n,
                          g->out + (size_t)(m + r) * g->ldo + c0);
}

#define ROWS256(MR, NH)                                                  \
    do {                                                                 \
        int m = m0;                                                      \
        for (; m + (MR) <= m1; m += (MR)) tile256(g, m, nb, (MR), (NH)); \
        for (; m + 4 <= m1; m += 4) tile256(g, m, nb, 4, (NH));          \
        for (; m < m1; m++) tile256(g, m, nb, 1, (NH));                  \
    } while (0)

static EM_AVXVNNI void gemm_avxvnni(const gemm8 *g, int m0, int m1) {
    const int nblocks = (g->N + EM_NR - 1) / EM_NR;
    for (int nb = 0; nb < nblocks; nb++) {
        if (g->N - nb * EM_NR <= 8) ROWS256(8, 1);
        else ROWS256(6, 2);
    }
}
#endif

static void gemm8_run(int isa, const gemm8 *g, int m0, int m1) {
#ifdef EM_HAVE_AVXVNNI
    if (isa == EM_ISA_AVXVNNI) {
        gemm_avxvnni(g, m0, m1);
        return;
    }
#endif
    (void)isa;
    gemm_avx512vnni(g, m0, m1);
}

/* The VNNI section of em_pack_weights' array (see em_kernels.h). */
static void vnni_weights(const int16_t *packed, int N, int kp, const int32_t **colsum, const int8_t **w8) {
    const int nb = (N + EM_NR - 1) / EM_NR;
    *colsum = (const int32_t *)(packed + (size_t)nb * kp * EM_NR);
    *w8 = (const int8_t *)(*colsum + (size_t)nb * EM_NR);
}

int em_conv2d_vnni(const em_conv_args *a) {
    const int isa = em_isa_get();
    if (!em_isa_has_vnni(isa)) return 0;
    const int M = a->batch * a->out_h * a->out_w;
    const int K = a->k_h * a->k_w * a->in_c;
    const int kp = em_conv_kp(a->k_h, a->k_w, a->in_c), k4 = (K + 3) & ~3;
    const int32_t *colsum;
    const int8_t *w8;
    vnni_weights(a->w, a->out_c, kp, &colsum, &w8);
    /* scratch holds EM_CONV_ROWS rows of kp int16 per thread: as many rows of k4 <= 2 kp bytes */
    const int chunks = (M + EM_CONV_ROWS - 1) / EM_CONV_ROWS;
#pragma omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)
    for (int c = 0; c < chunks; c++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        uint8_t *buf = (uint8_t *)(a->scratch + (size_t)tid * EM_CONV_ROWS * kp);
        int m0 = c * EM_CONV_ROWS, m1 = m0 + EM_CONV_ROWS < M ? m0 + EM_CONV_ROWS : M;
        if (isa == EM_ISA_AVX512VNNI)
            im2col_u8_512(a, K, k4, m0, m1, buf);
        else
            im2col_u8(a, K, k4, m0, m1, buf);
        gemm8 g = {a->out_c, k4, buf, w8, colsum, a->bias, a->in_offset - 128, &a->rq,
                   a->out + (size_t)m0 * a->out_c, a->out_c};
        gemm8_run(isa, &g, 0, m1 - m0);
    }
    return 1;
}

int em_fully_connected_vnni(const em_fc_args *a) {
    const int isa = em_isa_get();
    if (!em_isa_has_vnni(isa)) return 0;
    const int K = a->in_features, kp = (K + 1) & ~1, k4 = (K + 3) & ~3;
    const int32_t *colsum;
    const int8_t *w8;
    vnni_weights(a->w, a->units, kp, &colsum, &w8);
    uint8_t *rows = (uint8_t *)a->scratch; /* rows x kp int16 holds rows x k4 bytes */
    for (int r = 0; r < a->rows; r++) {
        flip(a->in + (size_t)r * K, rows + (size_t)r * k4, K);
        if (k4 > K) memset(rows + (size_t)r * k4 + K, 0, (size_t)(k4 - K));
    }
    gemm8 g = {a->units, k4, rows, w8, colsum, a->bias, a->in_offset - 128, &a->rq, a->out, a->units};
    if (a->threads > 1 && a->rows >= 8) {
        const int chunks = (a->rows + 3) / 4;
#pragma omp parallel for num_threads(a->threads) schedule(static)
        for (int c = 0; c < chunks; c++) gemm8_run(isa, &g, c * 4, c * 4 + 4 < a->rows ? c * 4 + 4 : a->rows);
    } else {
        gemm8_run(isa, &g, 0, a->rows);
    }
    return 1;
}

#else /* no x86 SIMD in this build: no VNNI path is ever in effect */

int em_conv2d_vnni(const em_conv_args *a) {
    (void)a;
    return 0;
}

int em_fully_connected_vnni(const em_fc_args *a) {
    (void)a;
    return 0;
}

#endif
