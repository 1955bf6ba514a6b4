/* int8 GEMM with a per-channel requantizing output stage, for CONV_2D and
 * FULLY_CONNECTED.  Operands arrive widened to int16 (input minus its zero
 * point) so that one AVX2 madd does 16 multiply-adds; sums are exact int32,
 * so both paths give the same bytes whatever the summation order. */
#include <string.h>
#include "requant.h"
#include "requant_panel_x86.h"
#include "requant_portable.h"

/* Whether packed weights carry the VNNI section: decided by the CPU, not by the
 * path in effect, so a kernel built under one path runs under any other. */
static int vnni_packed(void) {
    return em_isa_supported(EM_ISA_AVXVNNI) || em_isa_supported(EM_ISA_AVX512VNNI) ||
           em_isa_supported(EM_ISA_DOTPROD) || /* the SDOT path (gemm_neon.c) reads the same int8 section */
           em_isa_supported(EM_ISA_NEON);      /* and so does the neon smull GEMM (every aarch64 CPU) */
}

size_t em_packed_weights_len(int N, int K) {
    int kp = (K + 1) & ~1;
    int nb = (N + EM_NR - 1) / EM_NR;
    size_t len = (size_t)nb * kp * EM_NR;
    if (vnni_packed()) {
        int k4 = (K + 3) & ~3;
        len += (size_t)nb * EM_NR * 2 + (size_t)nb * k4 * EM_NR / 2; /* int32 sums, int8 panels (in int16 units) */
#ifdef EM_HAVE_NEON
        len += 2; /* int32 after the panels: no weight is -128 (the neon smull GEMM's int16 bound, gemm_neon.c) */
#endif
    }
    return len;
}

/* W[n][k] (row-major int8) -> [n/16][k/2][16 lanes][2] int16, zero-padded;
 * then, with VNNI, the column sums sum_k W[n][k] as int32 [n/16 * 16] and the
 * int8 panels [n/16][k/4][16 lanes][4] (one 64-byte vpdpbusd operand per 4 k). */
void em_pack_weights(const int8_t *w, int N, int K, int16_t *packed) {
    int kp = (K + 1) & ~1;
    int nblocks = (N + EM_NR - 1) / EM_NR;
    memset(packed, 0, em_packed_weights_len(N, K) * sizeof(int16_t));
    for (int nb = 0; nb < nblocks; nb++)
        for (int j = 0; j < EM_NR; j++) {
            int n = nb * EM_NR + j;
            if (n >= N) break;
            for (int k = 0; k < K; k++)
                packed[((size_t)nb * (kp / 2) + k / 2) * 2 * EM_NR + j * 2 + (k & 1)] = w[(size_t)n * K + k];
        }
    if (!vnni_packed()) return;
    const int k4 = (K + 3) & ~3;
    int32_t *sums = (int32_t *)(packed + (size_t)nblocks * kp * EM_NR);
    int8_t *p8 = (int8_t *)(sums + (size_t)nblocks * EM_NR);
    for (int n = 0; n < N; n++) {
        const int nb = n / EM_NR, j = n % EM_NR;
        int32_t s = 0;
        for (int k = 0; k < K; k++) {
            s += w[(size_t)n * K + k];
            p8[((size_t)nb * (k4 / 4) + k / 4) * 4 * EM_NR + j * 4 + (k & 3)] = w[(size_t)n * K + k];
        }
        sums[n] = s;
    }
#ifdef EM_HAVE_NEON
    int32_t no_min = 1;
    for (size_t i = 0; i < (size_t)N * K; i++) no_min &= w[i] != -128;
    memcpy(p8 + (size_t)nblocks * k4 * EM_NR, &no_min, sizeof no_min);
#endif
}

/* Portable GEMM in plain C that compilers vectorize without intrinsics: the one int16 shape they all turn into
 * a widening multiply-add is a dot-product reduction over contiguous k (gcc: pmaddwd on SSE2, smlal on ARM,
 * vwmacc on RISC-V), not the packed panel's interleaved [k/2][16 lanes][2] order (broadcast-pair madds, which
 * no compiler derives from C).  So each 16-channel panel is transposed, a block of k at a time, into [lane][k]
 * on the stack and reused for every row of the call; tiles of 2 rows x 4 channels keep 8 vector reductions in
 * registers (16 on x86-64 SSE).  Sums are exact int32, so the order of the k terms does not change the bytes. */
#define EM_PORT_KB 512 /* k per transposed block: 16 x 512 int16 = 16 KiB of stack */
#define EM_PORT_MB EM_RQ_COLUMN_MAX /* rows per pass over the panels: their accumulators, 16 x 64 int32 */
#define EM_PORT_LDC (EM_PORT_MB + 1) /* accumulator row stride: a spare row for an odd last row's copy */

/* rows a0, a1 (kl int16 from k) . channels w[0..3 * ldw] -> o[0..3 * EM_PORT_LDC] (rows 0 and 1) += the 8 sums */
static inline void dot_2x4(const int16_t *restrict a0, const int16_t *restrict a1, const int16_t *restrict w, int kl,
                           int ldw, int32_t *restrict o) {
    const int16_t *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    int32_t s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
    for (int k = 0; k < kl; k++) {
        const int32_t x0 = a0[k], x1 = a1[k];
        s00 += x0 * w0[k];
        s01 += x0 * w1[k];
        s02 += x0 * w2[k];
        s03 += x0 * w3[k];
        s10 += x1 * w0[k];
        s11 += x1 * w1[k];
        s12 += x1 * w2[k];
        s13 += x1 * w3[k];
    }
    o[0] += s00, o[EM_PORT_LDC] += s01, o[2 * EM_PORT_LDC] += s02, o[3 * EM_PORT_LDC] += s03;
    o[1] += s10, o[EM_PORT_LDC + 1] += s11, o[2 * EM_PORT_LDC + 1] += s12, o[3 * EM_PORT_LDC + 1] += s13;
}

static void gemm_portable(const em_gemm_args *g, int m0, int m1) {
    int16_t wt[EM_NR][EM_PORT_KB];
    /* channel-major, one spare row: an odd last row pairs with itself and its copy's sums land there */
    int32_t acc[EM_NR][EM_PORT_LDC];
    for (int mb = m0; mb < m1; mb += EM_PORT_MB) {
        const int rows = m1 - mb < EM_PORT_MB ? m1 - mb : EM_PORT_MB;
        for (int nb = 0; nb * EM_NR < g->N; nb++) {
            const int16_t *wb = g->w + (size_t)nb * g->Kp * EM_NR;
            const int c0 = nb * EM_NR;
            const int n = g->N - c0 < EM_NR ? g->N - c0 : EM_NR;
            for (int j = 0; j < EM_NR; j++)
                for (int r = 0; r <= rows; r++) acc[j][r] = g->bias[c0 + j];
            for (int k0 = 0; k0 < g->Kp; k0 += EM_PORT_KB) { /* Kp and EM_PORT_KB even: whole k pairs */
                const int kl = g->Kp - k0 < EM_PORT_KB ? g->Kp - k0 : EM_PORT_KB;
                for (int k = 0; k < kl; k += 2) {
                    const int16_t *src = wb + (size_t)(k0 + k) * EM_NR;
                    for (int j = 0; j < EM_NR; j++) wt[j][k] = src[2 * j], wt[j][k + 1] = src[2 * j + 1];
                }
                for (int r = 0; r < rows; r += 2) {
                    const int16_t *a0 = g->a + (size_t)(mb + r) * g->Kp + k0;
                    const int16_t *a1 = r + 1 < rows ? a0 + g->Kp : a0;
                    for (int j = 0; j < EM_NR; j += 4) dot_2x4(a0, a1, wt[j], kl, EM_PORT_KB, &acc[j][r]);
                }
            }
            for (int j = 0; j < n; j++)
                em_requant_column_portable(acc[j], rows, &g->rq, c0 + j, g->out + (size_t)mb * g->ldo + c0 + j, g->ldo);
        }
    }
}

#ifdef EM_HAVE_AVX2
/* 4 rows x 16 channels per tile: 8 accumulators, 2 weight loads and 4
 * broadcasts per pair of k. */
static EM_AVX2 void gemm_avx2(const em_gemm_args *g, int m0, int m1) {
    const int k2 = g->Kp / 2;
    const em_requant rq = g->rq; /* a local copy: the int8 stores may alias *g to gcc (reloads per store) */
    for (int nb = 0; nb * EM_NR < g->N; nb++) {
        const int16_t *wb = g->w + (size_t)nb * k2 * 2 * EM_NR;
        const int c0 = nb * EM_NR;
        int n = g->N - c0 < EM_NR ? g->N - c0 : EM_NR;
        rq256_panel q; /* the panel's output stage, prepared once */
        rq256_panel_prep(&q, &rq, c0);
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(g->bias + c0));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(g->bias + c0 + 8));
        int m = m0;
        for (; m + 4 <= m1; m += 4) {
            const int32_t *a0 = (const int32_t *)(g->a + (size_t)m * g->Kp);
            const int32_t *a1 = (const int32_t *)(g->a + (size_t)(m + 1) * g->Kp);
            const int32_t *a2 = (const int32_t *)(g->a + (size_t)(m + 2) * g->Kp);
            const int32_t *a3 = (const int32_t *)(g->a + (size_t)(m + 3) * g->Kp);
            __m256i c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1, c30 = b0, c31 = b1;
            for (int k = 0; k < k2; k++) {
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(wb + (size_t)k * 32));
                __m256i w1 = _mm256_loadu_si256((const __m256i *)(wb + (size_t)k * 32 + 16));
                __m256i x;
                x = _mm256_set1_epi32(a0[k]);
                c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(x, w0));
                c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(x, w1));
                x = _mm256_set1_epi32(a1[k]);
                c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(x, w0));
                c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(x, w1));
                x = _mm256_set1_epi32(a2[k]);
                c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(x, w0));
                c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(x, w1));
                x = _mm256_set1_epi32(a3[k]);
                c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(x, w0));
                c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(x, w1));
            }
            int8_t *o = g->out + (size_t)m * g->ldo + c0;
            rq256_store_rows2(c00, c01, c10, c11, &q, &rq, c0, n, o, o + g->ldo);
            rq256_store_rows2(c20, c21, c30, c31, &q, &rq, c0, n, o + 2 * (size_t)g->ldo, o + 3 * (size_t)g->ldo);
        }
        for (; m < m1; m++) {
            const int32_t *a0 = (const int32_t *)(g->a + (size_t)m * g->Kp);
            __m256i c00 = b0, c01 = b1;
            for (int k = 0; k < k2; k++) {
                __m256i x = _mm256_set1_epi32(a0[k]);
                c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)(wb + (size_t)k * 32))));
                c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)(wb + (size_t)k * 32 + 16))));
            }
            rq256_store16(c00, c01, &q, &rq, c0, n, g->out + (size_t)m * g->ldo + c0);
        }
    }
}
#endif

#ifdef EM_HAVE_AVX2
static EM_AVX2 void widen_avx2(const int8_t *x, int16_t *y, size_t n, int32_t off) {
    const __m256i o = _mm256_set1_epi16((short)off);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i),
                            _mm256_add_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + i))), o));
    for (; i < n; i++) y[i] = (int16_t)(x[i] + off);
}
#endif

void em_widen(const int8_t *x, int16_t *y, size_t n, int32_t off) {
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2) { widen_avx2(x, y, n, off); return; }
#endif
#ifdef EM_HAVE_NEON
    if (em_isa_get() >= EM_ISA_NEON) { em_widen_neon(x, y, n, off); return; }
#endif
    for (size_t i = 0; i < n; i++) y[i] = (int16_t)(x[i] + off);
}

void em_gemm(const em_gemm_args *g, int m0, int m1) {
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2) { gemm_avx2(g, m0, m1); return; }
#endif
#ifdef EM_HAVE_NEON
    if (em_isa_get() >= EM_ISA_NEON) { em_gemm_neon(g, m0, m1); return; }
#endif
    gemm_portable(g, m0, m1);
}
