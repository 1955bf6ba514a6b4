/* VNNI paths of the int8 GEMM (CONV_2D as an indirect GEMM, FULLY_CONNECTED):
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
#include "conv_driver.h"
#include "requant.h"
#include "requant_panel_x86.h"

#ifdef EM_HAVE_AVX2

/* The GEMM's operand: each of its rows (an output pixel) is nseg runs of seg4 bytes (a multiple of 4) of
 * u = x + 128, run s at the row's pointer + seg_off[s]; one run of K4 bytes for FULLY_CONNECTED's rows,
 * a filter row (or tap) each for the indirect conv, whose rows point into a padded image.  The weights' k order
 * is the runs' order. */
typedef struct {
    int N;
    int nseg, seg4;
    const ptrdiff_t *seg_off;
    const int8_t *w;           /* [ceil(N/16)][nseg * seg4 / 4][16][4] */
    const int32_t *colsum, *bias;
    int32_t corr;              /* in_offset - 128 */
    const em_requant *rq;
} gemm8;

static const ptrdiff_t zero_off[1] = {0};

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

#define EM_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define EM_ALWAYS_INLINE inline __attribute__((always_inline))

/* ---- AVX-512 VNNI: MR rows x NP panels of 16 channels per tile ---- */
/* em_requant16_avx2 on one zmm: the same arithmetic lane for lane (see em_mbqm_avx2 in requant.h).
 * What depends on the channel only is prepared once per tile (rq512_prep), not per row. */
typedef struct {
    __m512i mult, mult_odd, left, right, bit_shift, bit_mask;
    __m512i round_even, round_odd, shift_even, shift_odd; /* 64-bit lanes: the one-step ties-up form */
    __mmask16 up;  /* lanes that round ties up (ruy); the others away from zero */
    int c0, n;
    int left_any;  /* some lane shifts left */
    /* every lane shifts right by 1..23 and the clamp bounds lie in int8: the zero point goes into the 64-bit
     * rounding constant (+ zp 2^(31+r), |x mult + ...| stays below 2^63) and the result plus zp fits int32
     * (|result| <= 2^30), so store_tile512 narrows 4 rows together (rows4_512) */
    int fold;
    __m512i round_even_zp, round_odd_zp;
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
    q->left_any = _mm512_test_epi32_mask(q->left, q->left) != 0;
    /* only the live lanes: a partial panel's padding lanes have shift 0 and their outputs are never stored */
    const __mmask16 live = (__mmask16)((1u << q->n) - 1);
    q->fold = _mm512_mask_cmpge_epi32_mask(live, q->right, one) == live &&
              _mm512_mask_cmple_epi32_mask(live, q->right, _mm512_set1_epi32(23)) == live && rq->act_min >= -128 &&
              rq->act_max <= 127 && rq->act_min <= rq->act_max;
    const __m512i zp64 = _mm512_set1_epi64(rq->zp);
    q->round_even_zp = _mm512_add_epi64(q->round_even, _mm512_sllv_epi64(zp64, q->shift_even));
    q->round_odd_zp = _mm512_add_epi64(q->round_odd, _mm512_sllv_epi64(zp64, q->shift_odd));
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

#define EM_MR_MAX 16 /* most rows per tile */

/* store512's one-step form (ties up, right shifts) on one panel's accumulators x, rounding constants re / ro */
static EM_AVX512VNNI EM_ALWAYS_INLINE __m512i mbqm512(__m512i x, const rq512 *qp, __m512i re, __m512i ro) {
    const __m512i e = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, qp->mult), re), qp->shift_even);
    const __m512i o = _mm512_srav_epi64(
        _mm512_add_epi64(_mm512_mul_epi32(_mm512_shuffle_epi32(x, _MM_PERM_DDBB), qp->mult_odd), ro), qp->shift_odd);
    /* the odd lanes' low dwords up into the odd positions */
    return _mm512_mask_shuffle_epi32(e, 0xAAAA, o, _MM_PERM_CCAA);
}

/* Four rows of a panel with qp->fold: the zero point already added (round_*_zp), so saturating packs to int8,
 * then the clamp in int8 (the bounds lie inside it: clamping after the narrowing gives what clamping before it
 * gives), one permute and four 16-byte stores for 64 outputs instead of a clamp, add and narrowing per row. */
static EM_AVX512VNNI EM_ALWAYS_INLINE void rows4_512(const __m512i *x, const rq512 *qp, const em_requant *rq,
                                                     int8_t *out, int ldo) {
    const __m512i v0 = mbqm512(x[0], qp, qp->round_even_zp, qp->round_odd_zp);
    const __m512i v1 = mbqm512(x[1], qp, qp->round_even_zp, qp->round_odd_zp);
    const __m512i v2 = mbqm512(x[2], qp, qp->round_even_zp, qp->round_odd_zp);
    const __m512i v3 = mbqm512(x[3], qp, qp->round_even_zp, qp->round_odd_zp);
    /* per 128-bit lane i, dword j: row j's channels 4i..4i+3 */
    __m512i b = _mm512_packs_epi16(_mm512_packs_epi32(v0, v1), _mm512_packs_epi32(v2, v3));
    b = _mm512_min_epi8(_mm512_max_epi8(b, _mm512_set1_epi8((char)rq->act_min)), _mm512_set1_epi8((char)rq->act_max));
    b = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), b);
    const __m128i r0 = _mm512_castsi512_si128(b), r1 = _mm512_extracti32x4_epi32(b, 1);
    const __m128i r2 = _mm512_extracti32x4_epi32(b, 2), r3 = _mm512_extracti32x4_epi32(b, 3);
    int8_t *o = out + qp->c0;
    if (qp->n == EM_NR) {
        _mm_storeu_si128((__m128i *)o, r0);
        _mm_storeu_si128((__m128i *)(o + ldo), r1);
        _mm_storeu_si128((__m128i *)(o + 2 * (size_t)ldo), r2);
        _mm_storeu_si128((__m128i *)(o + 3 * (size_t)ldo), r3);
    } else {
        const __mmask16 m = (__mmask16)((1u << qp->n) - 1);
        _mm_mask_storeu_epi8(o, m, r0);
        _mm_mask_storeu_epi8(o + ldo, m, r1);
        _mm_mask_storeu_epi8(o + 2 * (size_t)ldo, m, r2);
        _mm_mask_storeu_epi8(o + 3 * (size_t)ldo, m, r3);
    }
}

static EM_AVX512VNNI __attribute__((noinline)) void store_tile512(const __m512i *res, int MR, int NP, const rq512 *q,
                                                                  const em_requant *rq, int8_t *out, int ldo) {
    int fast = 1;
    for (int p = 0; p < NP; p++) fast &= q[p].up == 0xFFFF && !q[p].left_any;
    if (fast) { /* the usual case (conv, FC: ties up, right shifts): store512's one-step form, the clamp bounds
                 * hoisted, a panel's constants kept in registers over its rows */
        const em_requant rqc = *rq; /* a local copy: the int8 stores may alias *rq to gcc */
        const __m512i lo = _mm512_set1_epi32(rq->act_min - rq->zp), hi = _mm512_set1_epi32(rq->act_max - rq->zp);
        const __m512i zp = _mm512_set1_epi32(rq->zp);
        for (int p = 0; p < NP; p++) {
            const rq512 *qp = &q[p];
            int r = 0;
            if (qp->fold)
                for (; r + 4 <= MR; r += 4) {
                    const __m512i x[4] = {res[r * NP + p], res[(r + 1) * NP + p], res[(r + 2) * NP + p],
                                          res[(r + 3) * NP + p]};
                    rows4_512(x, qp, &rqc, out + (size_t)r * ldo, ldo);
                }
            for (; r < MR; r++) {
                __m512i v = mbqm512(res[r * NP + p], qp, qp->round_even, qp->round_odd);
                v = _mm512_add_epi32(_mm512_max_epi32(_mm512_min_epi32(v, hi), lo), zp);
                int8_t *o8 = out + (size_t)r * ldo + qp->c0;
                if (qp->n == EM_NR)
                    _mm_storeu_si128((__m128i *)o8, _mm512_cvtepi32_epi8(v));
                else
                    _mm512_mask_cvtepi32_storeu_epi8(o8, (__mmask16)((1u << qp->n) - 1), v);
            }
        }
        return;
    }
    for (int r = 0; r < MR; r++)
        for (int p = 0; p < NP; p++) store512(res[r * NP + p], &q[p], rq, out + (size_t)r * ldo + q[p].c0);
}

/* One tile: MR > 1 rows (rows[r], outputs out + r * ldo) x NP panels from panel nb; q: the panels' output
 * stages.  MR and NP are constants at every call, so the loops unroll and the accumulators stay in registers. */
static EM_AVX512VNNI EM_ALWAYS_INLINE void tile512(const gemm8 *g, const uint8_t *const *rows, int8_t *out, int ldo,
                                                  int nb, const rq512 *q, const int MR, const int NP) {
    /* fixed sizes: an array sized by MR / NP would be a VLA, kept in memory; these unroll into registers */
    __m512i acc[EM_MR_MAX][4];
    const size_t pstride = (size_t)g->nseg * g->seg4 * EM_NR; /* bytes from one panel to the next */
    const __m512i corr = _mm512_set1_epi32(g->corr);
#pragma GCC unroll 8
    for (int p = 0; p < NP; p++) {
        const int c0 = (nb + p) * EM_NR;
        __m512i b = _mm512_add_epi32(_mm512_loadu_si512((const void *)(g->bias + c0)),
                                     _mm512_mullo_epi32(corr, _mm512_loadu_si512((const void *)(g->colsum + c0))));
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) acc[r][p] = b;
    }
    const int8_t *w = g->w + nb * pstride;
    for (int s = 0; s < g->nseg; s++) {
        const uint8_t *a[EM_MR_MAX];
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) a[r] = rows[r] + g->seg_off[s];
        for (int k = 0; k < g->seg4; k += 4, w += 4 * EM_NR) {
            __m512i wv[4];
#pragma GCC unroll 8
            for (int p = 0; p < NP; p++) wv[p] = _mm512_loadu_si512((const void *)(w + p * pstride));
#pragma GCC unroll 16
            for (int r = 0; r < MR; r++) {
                const __m512i x = _mm512_set1_epi32(load_i32(a[r] + k));
#pragma GCC unroll 8
                for (int p = 0; p < NP; p++) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], x, wv[p]);
            }
        }
    }
    /* the output stage out of line, from memory: inlined here, its registers made gcc copy every accumulator
     * to another register and back in each iteration of the k loop */
    __m512i res[EM_MR_MAX * 4];
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int p = 0; p < NP; p++) res[r * NP + p] = acc[r][p];
    store_tile512(res, MR, NP, q, g->rq, out, ldo);
}

/* One row (FULLY_CONNECTED on one input, tails) x NP panels: NP chains alone would wait on vpdpbusd's latency,
 * so 4 k-groups go to 4 accumulator sets, added at the end (integer sums: the same bytes). */
static EM_AVX512VNNI EM_ALWAYS_INLINE void row512(const gemm8 *g, const uint8_t *const *rows, int8_t *out, int ldo,
                                                 int nb, const rq512 *q, const int NP) {
    (void)ldo;
    __m512i acc[4][4];
    const size_t pstride = (size_t)g->nseg * g->seg4 * EM_NR;
    const __m512i corr = _mm512_set1_epi32(g->corr);
#pragma GCC unroll 8
    for (int p = 0; p < NP; p++) {
        const int c0 = (nb + p) * EM_NR;
        acc[0][p] = _mm512_add_epi32(_mm512_loadu_si512((const void *)(g->bias + c0)),
                                     _mm512_mullo_epi32(corr, _mm512_loadu_si512((const void *)(g->colsum + c0))));
        acc[1][p] = acc[2][p] = acc[3][p] = _mm512_setzero_si512();
    }
    const int8_t *w = g->w + nb * pstride;
    for (int s = 0; s < g->nseg; s++) {
        const uint8_t *a = rows[0] + g->seg_off[s];
        int k = 0;
        for (; k + 16 <= g->seg4; k += 16, w += 16 * EM_NR)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m512i x = _mm512_set1_epi32(load_i32(a + k + 4 * j));
#pragma GCC unroll 8
                for (int p = 0; p < NP; p++)
                    acc[j][p] = _mm512_dpbusd_epi32(acc[j][p], x, _mm512_loadu_si512((const void *)(w + p * pstride + 64 * j)));
            }
        for (; k < g->seg4; k += 4, w += 4 * EM_NR) {
            const __m512i x = _mm512_set1_epi32(load_i32(a + k));
#pragma GCC unroll 8
            for (int p = 0; p < NP; p++)
                acc[0][p] = _mm512_dpbusd_epi32(acc[0][p], x, _mm512_loadu_si512((const void *)(w + p * pstride)));
        }
    }
#pragma GCC unroll 8
    for (int p = 0; p < NP; p++)
        store512(_mm512_add_epi32(_mm512_add_epi32(acc[0][p], acc[1][p]), _mm512_add_epi32(acc[2][p], acc[3][p])),
                 &q[p], g->rq, out + q[p].c0);
}

/* Each tile shape its own function: one register allocation per shape (inlined together, gcc spilled the row
 * pointers and shuffled accumulators between registers in the hot loop). */
#define TILE512(MR, NP)                                                                                            \
    static EM_AVX512VNNI __attribute__((noinline)) void tile512_##MR##x##NP(                                      \
        const gemm8 *g, const uint8_t *const *rows, int8_t *out, int ldo, int nb, const rq512 *q) {               \
        if (MR == 1)                                                                                              \
            row512(g, rows, out, ldo, nb, q, NP);                                                                 \
        else                                                                                                      \
            tile512(g, rows, out, ldo, nb, q, MR > 1 ? MR : 2, NP);                                               \
    }
TILE512(5, 4)
TILE512(4, 4)
TILE512(1, 4)
TILE512(6, 3)
TILE512(4, 3)
TILE512(1, 3)
TILE512(8, 2)
TILE512(4, 2)
TILE512(1, 2)
TILE512(16, 1)
TILE512(4, 1)
TILE512(1, 1)

/* The n rows for panels nb..nb+NP: as many MR-row tiles as fit, then 4-row, then single rows. */
#define ROWS512(MR, NP)                                                                                     \
    do {                                                                                                    \
        rq512 q[4];                                                                                         \
        for (int p = 0; p < (NP); p++) rq512_prep(&q[p], g, (nb + p) * EM_NR);                              \
        int m = 0;                                                                                          \
        for (; m + (MR) <= n; m += (MR)) tile512_##MR##x##NP(g, rows + m, out + (size_t)m * ldo, ldo, nb, q); \
        for (; m + 4 <= n; m += 4) tile512_4x##NP(g, rows + m, out + (size_t)m * ldo, ldo, nb, q);            \
        for (; m < n; m++) tile512_1x##NP(g, rows + m, out + (size_t)m * ldo, ldo, nb, q);                    \
    } while (0)

static EM_AVX512VNNI void gemm_avx512vnni(const gemm8 *g, const uint8_t *const *rows, int n, int8_t *out, int ldo) {
    const int nblocks = (g->N + EM_NR - 1) / EM_NR;
    int nb = 0;
    /* enough independent accumulators to cover vpdpbusd's latency, few enough loads per vpdpbusd
     * (a weight panel per NP, a broadcast per row), within the 32 zmm */
    for (; nb + 4 <= nblocks; nb += 4) ROWS512(5, 4);
    if (nblocks - nb == 3) ROWS512(6, 3);
    else if (nblocks - nb == 2) ROWS512(8, 2);
    else if (nblocks - nb == 1) ROWS512(16, 1);
}

/* ---- AVX-VNNI (VEX, 256-bit): MR rows x one panel (two ymm: channels 0-7, 8-15) ---- */
#ifdef EM_HAVE_AVXVNNI
#define EM_AVXVNNI __attribute__((target("avxvnni,avx2,fma")))

static EM_AVXVNNI __attribute__((noinline)) void store_tile256(const __m256i *res, int MR, const gemm8 *g, int c0,
                                                               const rq256_panel *q, int8_t *out, int ldo) {
    const int n = g->N - c0 < EM_NR ? g->N - c0 : EM_NR;
    /* a local copy: the int8 stores may alias *g->rq to gcc, which then rebuilt the clamp vectors per store */
    const em_requant rq = *g->rq;
    int r = 0;
    for (; r + 2 <= MR; r += 2)
        rq256_store_rows2(res[2 * r], res[2 * r + 1], res[2 * r + 2], res[2 * r + 3], q, &rq, c0, n,
                          out + (size_t)r * ldo + c0, out + (size_t)(r + 1) * ldo + c0);
    if (r < MR) rq256_store16(res[2 * r], res[2 * r + 1], q, &rq, c0, n, out + (size_t)r * ldo + c0);
}

/* NH = 2: both halves of the panel; NH = 1: channels 0-7 only (the last panel holds <= 8). */
static EM_AVXVNNI EM_ALWAYS_INLINE void tile256(const gemm8 *g, const uint8_t *const *rows, int8_t *out, int ldo,
                                               int nb, const rq256_panel *q, const int MR, const int NH) {
    __m256i acc[EM_MR_MAX][2]; /* fixed sizes, as tile512 */
    const int K4 = g->nseg * g->seg4;
    const __m256i corr = _mm256_set1_epi32(g->corr);
    const int c0 = nb * EM_NR;
#pragma GCC unroll 2
    for (int h = 0; h < NH; h++) {
        __m256i b = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(g->bias + c0 + 8 * h)),
                                     _mm256_mullo_epi32(corr, _mm256_loadu_si256((const __m256i *)(g->colsum + c0 + 8 * h))));
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) acc[r][h] = b;
    }
    const int8_t *w0 = g->w + (size_t)nb * K4 * EM_NR;
    __m256i s1[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    for (int s = 0; s < g->nseg; s++) {
        const uint8_t *a[EM_MR_MAX];
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) a[r] = rows[r] + g->seg_off[s];
        const int8_t *w = w0 + (size_t)s * g->seg4 * EM_NR;
        int k = 0;
        if (MR == 1) { /* one row: 2 accumulator sets over k, as tile512 (vpdpbusd latency) */
            for (; k + 8 <= g->seg4; k += 8) {
                const __m256i x0 = _mm256_set1_epi32(load_i32(a[0] + k)), x1 = _mm256_set1_epi32(load_i32(a[0] + k + 4));
#pragma GCC unroll 2
                for (int h = 0; h < NH; h++) {
                    const int8_t *wk = w + (size_t)k * EM_NR + 32 * h;
                    acc[0][h] = _mm256_dpbusd_avx_epi32(acc[0][h], x0, _mm256_loadu_si256((const __m256i *)wk));
                    s1[h] = _mm256_dpbusd_avx_epi32(s1[h], x1, _mm256_loadu_si256((const __m256i *)(wk + 64)));
                }
            }
        }
        for (; k < g->seg4; k += 4) {
            __m256i wv[2];
#pragma GCC unroll 2
            for (int h = 0; h < NH; h++) wv[h] = _mm256_loadu_si256((const __m256i *)(w + (size_t)k * EM_NR + 32 * h));
#pragma GCC unroll 16
            for (int r = 0; r < MR; r++) {
                const __m256i x = _mm256_set1_epi32(load_i32(a[r] + k));
#pragma GCC unroll 2
                for (int h = 0; h < NH; h++) acc[r][h] = _mm256_dpbusd_avx_epi32(acc[r][h], x, wv[h]);
            }
        }
    }
    if (MR == 1) {
#pragma GCC unroll 2
        for (int h = 0; h < NH; h++) acc[0][h] = _mm256_add_epi32(acc[0][h], s1[h]);
    }
    /* the output stage out of line, from memory (as tile512) */
    __m256i res[EM_MR_MAX * 2];
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
        res[2 * r] = acc[r][0];
        res[2 * r + 1] = NH == 2 ? acc[r][1] : _mm256_setzero_si256();
    }
    store_tile256(res, MR, g, c0, q, out, ldo);
}

#define TILE256(MR, NH)                                                                                      \
    static EM_AVXVNNI __attribute__((noinline)) void tile256_##MR##x##NH(const gemm8 *g, const uint8_t *const *rows, \
                                                                        int8_t *out, int ldo, int nb,            \
                                                                        const rq256_panel *q) {                  \
        tile256(g, rows, out, ldo, nb, q, MR, NH);                                                              \
    }
TILE256(6, 2)
TILE256(4, 2)
TILE256(3, 2)
TILE256(2, 2)
TILE256(1, 2)
TILE256(12, 1)
TILE256(4, 1)
TILE256(3, 1)
TILE256(2, 1)
TILE256(1, 1)

/* The rows left after the big tiles in one tile of 2 or 3 where they are (a 3x3 map's 9 rows: 6 + 3, not 6 + 1 + 1
 * + 1): each tile streams the panel's weights once, which a wide layer on few rows is bound by. */
#define ROWS256(MR, NH)                                                                                 \
    do {                                                                                                \
        rq256_panel q;                                                                                  \
        rq256_panel_prep(&q, g->rq, nb * EM_NR);                                                        \
        int m = 0;                                                                                      \
        for (; m + (MR) <= n; m += (MR)) tile256_##MR##x##NH(g, rows + m, out + (size_t)m * ldo, ldo, nb, &q); \
        for (; m + 4 <= n; m += 4) tile256_4x##NH(g, rows + m, out + (size_t)m * ldo, ldo, nb, &q);           \
        if (n - m == 3) tile256_3x##NH(g, rows + m, out + (size_t)m * ldo, ldo, nb, &q);                      \
        else if (n - m == 2) tile256_2x##NH(g, rows + m, out + (size_t)m * ldo, ldo, nb, &q);                 \
        else if (n - m == 1) tile256_1x##NH(g, rows + m, out + (size_t)m * ldo, ldo, nb, &q);                 \
    } while (0)

static EM_AVXVNNI void gemm_avxvnni(const gemm8 *g, const uint8_t *const *rows, int n, int8_t *out, int ldo) {
    const int nblocks = (g->N + EM_NR - 1) / EM_NR;
    for (int nb = 0; nb < nblocks; nb++) {
        if (g->N - nb * EM_NR <= 8) ROWS256(12, 1);
        else ROWS256(6, 2);
    }
}
#endif

/* n rows (pointers) of the operand -> n output rows at out, ldo apart, on the path isa names. */
static void gemm8_run(int isa, const gemm8 *g, const uint8_t *const *rows, int n, int8_t *out, int ldo) {
#ifdef EM_HAVE_AVXVNNI
    if (isa == EM_ISA_AVXVNNI) {
        gemm_avxvnni(g, rows, n, out, ldo);
        return;
    }
#endif
    (void)isa;
    gemm_avx512vnni(g, rows, n, out, ldo);
}

/* The VNNI section of em_pack_weights' array (see em_kernels.h). */
static void vnni_weights(const int16_t *packed, int N, int kp, const int32_t **colsum, const int8_t **w8) {
    const int nb = (N + EM_NR - 1) / EM_NR;
    *colsum = (const int32_t *)(packed + (size_t)nb * kp * EM_NR);
    *w8 = (const int8_t *)(*colsum + (size_t)nb * EM_NR);
}

/* ---- CONV_2D: an indirect GEMM on a padded image ---- */
typedef struct {
    int isa;
    gemm8 g;
    const uint8_t *img;     /* the padded image, hp x wp pixels per batch item */
    int hp, wp;
} vnni_conv;

/* The padded image's size: the rows and columns the windows reach, from -pad_top / -pad_left on. */
static void image_dims(const em_conv_args *a, int *hp, int *wp) {
    *hp = (a->out_h - 1) * a->stride_h + (a->k_h - 1) * a->dil_h + 1;
    *wp = (a->out_w - 1) * a->stride_w + (a->k_w - 1) * a->dil_w + 1;
}

/* The indirect conv's runs: a filter row (k_w x in_c bytes, contiguous in the image when dil_w is 1), else a
 * tap (in_c bytes), each rounded up to 4-byte groups; returns how many.  Where a run is not whole groups its
 * weights are the conv section of em_pack_conv_weights (zeros past each run: the bytes read past a run, of the
 * next pixel, add nothing), else the VNNI section of em_pack_weights. */
static int conv_runs(int k_h, int k_w, int C, int dil_w, int *run, int *seg4) {
    const int per_row = dil_w == 1 || k_w == 1;
    *run = per_row ? k_w * C : C;
    *seg4 = (*run + 3) & ~3;
    return per_row ? k_h : k_h * k_w;
}

/* The x86 VNNI paths are on this CPU (the conv section is packed for them only). */
static int x86_vnni(void) { return em_isa_supported(EM_ISA_AVXVNNI) || em_isa_supported(EM_ISA_AVX512VNNI); }

/* The VNNI conv section's length (int16 units): filter runs zero-padded to 4-byte groups, where a run is not whole
 * groups and a VNNI path is on this CPU; else 0. */
static size_t vnni_section_len(int N, int k_h, int k_w, int in_c, int dil_w) {
    int run, seg4;
    const int nseg = conv_runs(k_h, k_w, in_c, dil_w, &run, &seg4);
    if (run == seg4 || !x86_vnni()) return 0;
    return (size_t)(N + EM_NR - 1) / EM_NR * nseg * seg4 * EM_NR / 2;
}

/* The int16 filter-row section (conv.c's conv_rows_avx2): where a filter row of k_w x in_c taps is an odd
 * count, each is padded with one zero weight to whole int16 pairs, [N/16][k_h x rp/2][16 lanes][2], rp the
 * padded row; where it is even, em_pack_weights' array is that layout already (no section). */
static size_t rows16_section_len(int N, int k_h, int k_w, int in_c) {
    if ((k_w * in_c) % 2 == 0 || !em_isa_supported(EM_ISA_AVX2)) return 0;
    return (size_t)(N + EM_NR - 1) / EM_NR * k_h * (k_w * in_c + 1) * EM_NR;
}

const int16_t *em_conv_rows16_weights(const em_conv_args *a) {
    const int run = a->k_w * a->in_c;
    if (run % 2 == 0) return a->w;
    if (!rows16_section_len(a->out_c, a->k_h, a->k_w, a->in_c)) return NULL;
    return a->w + em_packed_weights_len(a->out_c, a->k_h * run) +
           vnni_section_len(a->out_c, a->k_h, a->k_w, a->in_c, a->dil_w);
}

size_t em_conv_packed_len(int N, int k_h, int k_w, int in_c, int dil_w) {
    return em_packed_weights_len(N, k_h * k_w * in_c) + vnni_section_len(N, k_h, k_w, in_c, dil_w) +
           rows16_section_len(N, k_h, k_w, in_c);
}

void em_pack_conv_weights(const int8_t *w, int N, int k_h, int k_w, int in_c, int dil_w, int16_t *packed) {
    const int K = k_h * k_w * in_c;
    em_pack_weights(w, N, K, packed);
    const size_t base = em_packed_weights_len(N, K), vlen = vnni_section_len(N, k_h, k_w, in_c, dil_w);
    const size_t rlen = rows16_section_len(N, k_h, k_w, in_c);
    memset(packed + base, 0, (vlen + rlen) * sizeof(int16_t));
    if (vlen) {
        int run, seg4;
        const int nseg = conv_runs(k_h, k_w, in_c, dil_w, &run, &seg4);
        int8_t *p8 = (int8_t *)(packed + base);
        const int k4 = nseg * seg4;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) {
                const int kk = k / run * seg4 + k % run; /* k in the padded runs */
                p8[((size_t)(n / EM_NR) * (k4 / 4) + kk / 4) * 4 * EM_NR + (n % EM_NR) * 4 + (kk & 3)] =
                    w[(size_t)n * K + k];
            }
    }
    if (rlen) {
        const int run = k_w * in_c, rp = run + 1, kr = k_h * rp; /* k in the padded rows */
        int16_t *p16 = packed + base + vlen;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) {
                const int kk = k / run * rp + k % run;
                p16[((size_t)(n / EM_NR) * (kr / 2) + kk / 2) * 2 * EM_NR + (n % EM_NR) * 2 + (kk & 1)] =
                    w[(size_t)n * K + k];
            }
    }
}

/* Byte offsets of the runs from a window's top-left pixel in an image wp pixels wide. */
static void run_offsets(const em_conv_args *a, int wp, int nseg, ptrdiff_t *off) {
    const int per_kh = nseg == a->k_h;
    for (int s = 0; s < nseg; s++) {
        const int kh = per_kh ? s : s / a->k_w, kw = per_kh ? 0 : s % a->k_w;
        off[s] = ((ptrdiff_t)kh * a->dil_h * wp + (ptrdiff_t)kw * a->dil_w) * a->in_c;
    }
}

/* Scratch: the image, 4 bytes the last run may read past it, then the runs' offsets (8-byte aligned). */
static size_t image_len(const em_conv_args *a, int hp, int wp) {
    return ((size_t)a->batch * hp * wp * a->in_c + 4 + 7) & ~(size_t)7;
}

size_t em_conv_vnni_image_bytes(const em_conv_args *a) {
    int hp, wp, run, seg4;
    image_dims(a, &hp, &wp);
    return image_len(a, hp, wp) + (size_t)conv_runs(a->k_h, a->k_w, a->in_c, a->dil_w, &run, &seg4) * sizeof(ptrdiff_t);
}

/* u = x + 128 of the input, inside a border of the flipped zero point (128 - in_offset: adds nothing after the
 * correction), so that every tap of every window is a plain load. */
static void build_image(const em_conv_args *a, uint8_t *img, int hp, int wp) {
    const uint8_t pad = (uint8_t)(128 - a->in_offset);
    const int C = a->in_c;
    const int x0 = a->pad_left < wp ? a->pad_left : wp;
    const int x1 = a->pad_left + a->in_w < wp ? a->pad_left + a->in_w : wp;
    for (int b = 0; b < a->batch; b++)
        for (int py = 0; py < hp; py++) {
            uint8_t *row = img + ((size_t)b * hp + py) * wp * C;
            const int iy = py - a->pad_top;
            if (iy < 0 || iy >= a->in_h) {
                memset(row, pad, (size_t)wp * C);
                continue;
            }
            memset(row, pad, (size_t)x0 * C);
            flip_avx2(a->in + ((size_t)b * a->in_h + iy) * a->in_w * C, row + (size_t)x0 * C, (size_t)(x1 - x0) * C);
            memset(row + (size_t)x1 * C, pad, (size_t)(wp - x1) * C);
        }
}

static void fill_indirect(const em_conv_args *a, const void *ctx, int m0, int m1, void *buf, const void **rows) {
    const vnni_conv *v = (const vnni_conv *)ctx;
    (void)buf;
    /* a run of pointers px bytes apart per output row (the shape in locals: stores through rows could alias *a,
     * and gcc reloaded every field per row: a tenth of the VNNI conv's time on MobileNetV2) */
    const size_t C = (size_t)a->in_c, px = (size_t)a->stride_w * C, wp = (size_t)v->wp, hp = (size_t)v->hp;
    const int out_w = a->out_w, out_h = a->out_h, sh = a->stride_h, n = m1 - m0;
    const uint8_t *img = v->img;
    em_conv_pos p = em_conv_pos_at(a, m0);
    for (int i = 0; i < n;) {
        const uint8_t *q = img + (((size_t)p.b * hp + (size_t)p.oy * sh) * wp) * C + (size_t)p.ox * px;
        const int run = out_w - p.ox < n - i ? out_w - p.ox : n - i;
        for (int j = 0; j < run; j++, q += px) rows[i + j] = q;
        i += run;
        p.ox = 0;
        if (++p.oy == out_h) {
            p.oy = 0;
            p.b++;
        }
    }
}

static void gemm_chunk(const em_conv_args *a, const void *ctx, const void *buf, const void *const *rows, int n,
                       int8_t *out) {
    const vnni_conv *v = (const vnni_conv *)ctx;
    (void)buf;
    gemm8_run(v->isa, &v->g, (const uint8_t *const *)rows, n, out, a->out_c);
}

int em_conv2d_vnni(const em_conv_args *a) {
    const int isa = em_isa_get();
    if (!em_isa_has_vnni(isa)) return 0;
    const int K = a->k_h * a->k_w * a->in_c;
    int run, seg4;
    const int nseg = conv_runs(a->k_h, a->k_w, a->in_c, a->dil_w, &run, &seg4);
    vnni_conv v = {.isa = isa};
    image_dims(a, &v.hp, &v.wp);
    /* the image and the offsets in scratch (em_conv_scratch_bytes counts them), read by every thread */
    uint8_t *img = (uint8_t *)a->scratch;
    const size_t len = image_len(a, v.hp, v.wp);
    ptrdiff_t *off = (ptrdiff_t *)(img + len);
    build_image(a, img, v.hp, v.wp);
    memset(img + (size_t)a->batch * v.hp * v.wp * a->in_c, 0, 4);
    run_offsets(a, v.wp, nseg, off);
    v.img = img;
    v.g = (gemm8){a->out_c, nseg, seg4, off, NULL, NULL, a->bias, a->in_offset - 128, &a->rq};
    vnni_weights(a->w, a->out_c, em_conv_kp(a->k_h, a->k_w, a->in_c), &v.g.colsum, &v.g.w);
    if (run != seg4) /* the conv section, after em_pack_weights' array */
        v.g.w = (const int8_t *)(a->w + em_packed_weights_len(a->out_c, K));
    /* one thread: long chunks (~2 % off MobileNetV2 / ResNet-8, interleaved A/B); more: EM_CONV_ROWS, so that the
     * rows split evenly */
    const em_conv_path p = {fill_indirect, gemm_chunk, &v, 0, 0, a->threads > 1 ? 0 : EM_CONV_CHUNK_MAX};
    em_conv_run(a, &p);
    return 1;
}

static void fc_rows(int isa, const gemm8 *g, const em_fc_args *a, const uint8_t *in, int k4, int m0, int step) {
    const uint8_t *rows[EM_CONV_ROWS];
    const int n = a->rows - m0 < step ? a->rows - m0 : step;
    for (int i = 0; i < n; i++) rows[i] = in + (size_t)(m0 + i) * k4;
    gemm8_run(isa, g, rows, n, a->out + (size_t)m0 * a->units, a->units);
}

int em_fully_connected_vnni(const em_fc_args *a) {
    const int isa = em_isa_get();
    if (!em_isa_has_vnni(isa)) return 0;
    const int K = a->in_features, kp = (K + 1) & ~1, k4 = (K + 3) & ~3;
    gemm8 g = {a->units, 1, k4, zero_off, NULL, NULL, a->bias, a->in_offset - 128, &a->rq};
    vnni_weights(a->w, a->units, kp, &g.colsum, &g.w);
    uint8_t *in = (uint8_t *)a->scratch; /* rows x kp int16 holds rows x k4 bytes */
    for (int r = 0; r < a->rows; r++) {
        flip(a->in + (size_t)r * K, in + (size_t)r * k4, K);
        if (k4 > K) memset(in + (size_t)r * k4 + K, 0, (size_t)(k4 - K));
    }
    /* 4-row pieces across threads (with 8 rows or more), else all rows here, EM_CONV_ROWS row pointers at a time
     * (no parallel region for one thread: it costs more than a small layer) */
    const int threaded = a->threads > 1 && a->rows >= 8, step = threaded ? 4 : EM_CONV_ROWS;
    const int pieces = (a->rows + step - 1) / step;
    if (!threaded) {
        for (int c = 0; c < pieces; c++) fc_rows(isa, &g, a, in, k4, c * step, step);
        return 1;
    }
#pragma omp parallel for num_threads(a->threads) schedule(static)
    for (int c = 0; c < pieces; c++) fc_rows(isa, &g, a, in, k4, c * step, step);
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

size_t em_conv_vnni_image_bytes(const em_conv_args *a) {
    (void)a;
    return 0;
}

size_t em_conv_packed_len(int N, int k_h, int k_w, int in_c, int dil_w) {
    (void)dil_w;
    return em_packed_weights_len(N, k_h * k_w * in_c);
}

void em_pack_conv_weights(const int8_t *w, int N, int k_h, int k_w, int in_c, int dil_w, int16_t *packed) {
    (void)dil_w;
    em_pack_weights(w, N, k_h * k_w * in_c, packed);
}

const int16_t *em_conv_rows16_weights(const em_conv_args *a) {
    return (a->k_w * a->in_c) % 2 == 0 ? a->w : NULL;
}

#endif
