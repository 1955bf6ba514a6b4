/* Edge cases of the neon path's int8 CONV_2D (gemm_neon.c: smull / smlal pairs accumulated by sadalp, direct
 * where in_c % 4 == 0, int8 im2col otherwise) against the portable path, byte for byte:
 *   1. shapes that reach every tail: a tap's run (in_c, or the im2col's K4) a multiple of 8 or 8 k + 4 (the
 *      4-k group step), one pixel left over in an output row / one GEMM row left over (the 2-row tile's lone
 *      row), channel counts that leave partial 16-channel blocks, padding on every side, strides, dilations,
 *      1x1, batch 2, 2 OpenMP threads; inputs and weights at the int16 bound (x = -128 with w = +-127: a lane
 *      holds 2 x 128 x 127 = 32512) and in_offset at both ends (padding taps read -in_offset = -128 or 127);
 *   2. weights holding -128 (legal in a .tflite though TFLite's quantizer never writes it), with inputs -128:
 *      the layer must fall back to the int16 GEMM (em_pack_weights records the -128) and match;
 *   3. the same cases with that record forced to "no -128": the int8 GEMM's int16 lanes wrap (2 x 128 x 128 =
 *      32768), so the bytes must differ -- proof that part 1 ran the int8 GEMM and that part 2's fallback is
 *      what keeps the bytes.
 * Built for aarch64 with the kernels, run under qemu-user by tests/test_neon_kernels.py; exits 1 on a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "em_kernels.h"
#include "conv_case.h"
#include "guarded.h"

static uint64_t s = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (uint32_t)s; }
static int rr(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

enum { VALUES_RANDOM, VALUES_BOUND, VALUES_MIN128 };

/* One conv on portable and neon; returns 1 when the bytes are equal.  force_ok: overwrite em_pack_weights'
 * record of -128 weights with "none" (part 3). */
static int conv_case(int it, int values, int force_ok, char *desc, size_t desc_len) {
    em_conv_args a;
    memset(&a, 0, sizeof a);
    static const int chans[] = {1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 28, 36};
    a.batch = rr(1, 2); a.in_h = rr(1, 8); a.in_w = rr(1, 9);
    a.in_c = chans[rr(0, (int)(sizeof chans / sizeof *chans) - 1)];
    a.out_c = rr(0, 3) == 0 ? 16 * rr(1, 3) : rr(1, 40);
    const int pointwise = it % 5 == 0;
    a.k_h = pointwise ? 1 : rr(1, 3); a.k_w = pointwise ? 1 : rr(1, 3);
    a.stride_h = rr(1, 2); a.stride_w = rr(1, 2);
    a.dil_h = pointwise ? 1 : rr(1, 2); a.dil_w = pointwise ? 1 : rr(1, 2);
    const int eh = (a.k_h - 1) * a.dil_h + 1, ew = (a.k_w - 1) * a.dil_w + 1;
    if (it % 2) { /* SAME */
        a.out_h = (a.in_h + a.stride_h - 1) / a.stride_h; a.out_w = (a.in_w + a.stride_w - 1) / a.stride_w;
        const int ph = (a.out_h - 1) * a.stride_h + eh - a.in_h, pw = (a.out_w - 1) * a.stride_w + ew - a.in_w;
        a.pad_top = ph > 0 ? ph / 2 : 0; a.pad_left = pw > 0 ? pw / 2 : 0;
    } else {
        if (a.in_h < eh) a.in_h = eh;
        if (a.in_w < ew) a.in_w = ew;
        a.out_h = (a.in_h - eh) / a.stride_h + 1; a.out_w = (a.in_w - ew) / a.stride_w + 1;
    }
    const int K = a.k_h * a.k_w * a.in_c, N = a.out_c, np = (N + 15) & ~15, nb = np / 16;
    const int M = a.batch * a.out_h * a.out_w, kp = em_conv_kp(a.k_h, a.k_w, a.in_c), k4 = (K + 3) & ~3;
    const size_t nin = (size_t)a.batch * a.in_h * a.in_w * a.in_c;
    void *map;
    size_t maplen;
    int8_t *in = guarded(nin, &map, &maplen), *w = malloc((size_t)N * K), *o[2];
    for (size_t i = 0; i < nin; i++) in[i] = values == VALUES_RANDOM ? (int8_t)rnd() : (int8_t)-128;
    for (int i = 0; i < N * K; i++)
        w[i] = values == VALUES_RANDOM ? (int8_t)rr(-127, 127) : values == VALUES_BOUND ? (int8_t)(rnd() & 1 ? 127 : -127)
                                                                                   : (int8_t)-128;
    if (values == VALUES_MIN128) /* a few channels' other weights random: the fallback covers any -128 */
        for (int i = 0; i < N * K; i++)
            if (rnd() % 4 == 0) w[i] = (int8_t)rr(-127, 127);
    /* the bound cases' sums are ~2^20: larger shifts */
    conv_params cp = conv_params_new(w, N, K, kp, np, values == VALUES_RANDOM ? 0 : 12, values == VALUES_RANDOM ? 11 : 14,
                                     rnd);
    if (force_ok) {
        const int32_t ok = 1; /* the int32 after the int8 panels (gemm.c) */
        memcpy((int8_t *)(cp.pw + (size_t)nb * kp * 16 + (size_t)nb * 16 * 2) + (size_t)nb * k4 * 16, &ok, sizeof ok);
    }
    a.in = in; a.w = cp.pw; a.bias = cp.bias; a.scratch = cp.scratch; a.threads = 1 + (it / 3) % 2;
    a.in_offset = values == VALUES_RANDOM ? (it % 7 == 0 ? 128 : it % 7 == 1 ? -127 : rr(-127, 128))
                                          : (rnd() & 1 ? 128 : rr(0, 127));
    a.rq = (em_requant){cp.mult, cp.shift, rr(-20, 20), -128, 127, rr(0, N)};
    for (int p = 0; p < 2; p++) {
        o[p] = malloc((size_t)M * N);
        em_isa_set(p == 0 ? EM_ISA_PORTABLE : EM_ISA_NEON);
        a.out = o[p];
        em_conv2d(&a);
    }
    const int same = memcmp(o[0], o[1], (size_t)M * N) == 0;
    snprintf(desc, desc_len, "b %d %dx%dx%d k %dx%d s %d,%d d %d,%d pad %d,%d out_c %d off %d threads %d",
             a.batch, a.in_h, a.in_w, a.in_c, a.k_h, a.k_w, a.stride_h, a.stride_w, a.dil_h, a.dil_w, a.pad_top,
             a.pad_left, N, a.in_offset, a.threads);
    free(o[0]); free(o[1]);
    munmap(map, maplen); free(w); conv_params_free(&cp);
    return same;
}

int main(void) {
    if (em_isa_set(EM_ISA_NEON) != EM_ISA_NEON) {
        printf("no neon path\n");
        return 1;
    }
    char d[256];
    int bad = 0, wrapped = 0;
    for (int it = 0; it < 400; it++)
        if (!conv_case(it, it % 4 == 3 ? VALUES_BOUND : VALUES_RANDOM, 0, d, sizeof d)) {
            bad++;
            printf("differs (%s values): %s\n", it % 4 == 3 ? "bound" : "random", d);
        }
    for (int it = 0; it < 60; it++)
        if (!conv_case(it, VALUES_MIN128, 0, d, sizeof d)) {
            bad++;
            printf("-128 weights differ (no fallback?): %s\n", d);
        }
    for (int it = 0; it < 60; it++) wrapped += !conv_case(it, VALUES_MIN128, 1, d, sizeof d);
    printf("400 edge cases, 60 with -128 weights, %d differ; forced past the -128 check %d of 60 wrap\n", bad, wrapped);
    return bad != 0 || wrapped < 30;
}
