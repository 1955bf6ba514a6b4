/* Checks the NEON GEMM (gemm_neon.c) and widening against the portable path, byte for byte, on random shapes:
 * row counts that leave 1-3 rows of a 4-row tile, channel counts that leave a partial 16-channel panel, odd K
 * (the zero-padded k pair), per-channel multipliers and shifts, and both rounding modes.  Built for aarch64
 * with gemm.c, gemm_neon.c and isa.c and run under qemu-user by tests/test_neon_requant.py.  Exits 1 on any
 * difference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "em_kernels.h"

static uint64_t s = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (uint32_t)s; }

int main(void) {
    long bad = 0, cases = 0;
    if (em_isa_set(EM_ISA_NEON) != EM_ISA_NEON) { printf("no neon path\n"); return 1; }
    for (int it = 0; it < 300; it++) {
        const int M = 1 + (int)(rnd() % 23), N = 1 + (int)(rnd() % 70), K = 1 + (int)(rnd() % 150);
        const int kp = (K + 1) & ~1, np = (N + 15) & ~15;
        int8_t *x = malloc((size_t)M * K), *w = malloc((size_t)N * K);
        int16_t *a = calloc((size_t)M * kp, 2), *a2 = calloc((size_t)M * kp, 2);
        int16_t *pw = malloc(em_packed_weights_len(N, K) * 2);
        int32_t *bias = calloc(np, 4), *mult = calloc(np, 4), *shift = calloc(np, 4);
        int8_t *o1 = malloc((size_t)M * N), *o2 = malloc((size_t)M * N);
        const int32_t off = (int32_t)(rnd() % 256) - 127;
        for (int i = 0; i < M * K; i++) x[i] = (int8_t)rnd();
        for (int i = 0; i < N * K; i++) w[i] = (int8_t)((int)(rnd() % 255) - 127);
        for (int n = 0; n < N; n++) {
            bias[n] = (int32_t)(rnd() % 40001) - 20000;
            mult[n] = (int32_t)((1u << 30) | (rnd() & 0x3fffffff));
            shift[n] = -(int)(rnd() % 12) + (it % 9 == 0 ? 2 : 0);
        }
        em_pack_weights(w, N, K, pw);
        for (int m = 0; m < M; m++) {
            em_isa_set(EM_ISA_PORTABLE);
            em_widen(x + (size_t)m * K, a + (size_t)m * kp, K, off);
            em_isa_set(EM_ISA_NEON);
            em_widen(x + (size_t)m * K, a2 + (size_t)m * kp, K, off);
        }
        if (memcmp(a, a2, (size_t)M * kp * 2)) { printf("widen differs (M %d K %d)\n", M, K); bad++; }
        em_requant rq = {mult, shift, (int32_t)(rnd() % 256) - 128, -128, 127, (int)(rnd() % (N + 1))};
        em_gemm_args g = {M, N, kp, a, pw, bias, rq, o1, N};
        em_isa_set(EM_ISA_PORTABLE);
        em_gemm(&g, 0, M);
        g.out = o2;
        em_isa_set(EM_ISA_NEON);
        em_gemm(&g, 0, M);
        cases++;
        if (memcmp(o1, o2, (size_t)M * N)) {
            printf("gemm differs: M %d N %d K %d\n", M, N, K);
            bad++;
        }
        free(x); free(w); free(a); free(a2); free(pw); free(bias); free(mult); free(shift); free(o1); free(o2);
    }
    printf("%ld gemm cases, %ld differ\n", cases, bad);
    return bad != 0;
}
