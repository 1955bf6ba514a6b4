/* The conv harnesses' layer parameters: weights packed by em_pack_weights, the scratch em_conv2d needs, and a
 * random per-channel requantization (bias in [-20000, 20000], multiplier in [2^30, 2^31), right shift in
 * [shift_lo, shift_hi]) drawn from the harness's own generator, in its order (bias, multiplier, shift per channel).
 * np: the channel count rounded up to the 16-channel blocks. */
#ifndef EM_TEST_CONV_CASE_H
#define EM_TEST_CONV_CASE_H
#include <stdint.h>
#include <stdlib.h>
#include "em_kernels.h"

typedef struct {
    int16_t *pw, *scratch;
    int32_t *bias, *mult, *shift;
} conv_params;

static conv_params conv_params_new(const int8_t *w, int N, int K, int kp, int np, int shift_lo, int shift_hi,
                                   uint32_t (*rnd)(void)) {
    conv_params p;
    p.pw = malloc(em_packed_weights_len(N, K) * 2);
    p.scratch = malloc(2 * ((size_t)EM_CONV_ROWS * kp * 2 + 64));
    p.bias = calloc(np, 4), p.mult = calloc(np, 4), p.shift = calloc(np, 4);
    for (int n = 0; n < N; n++) {
        p.bias[n] = -20000 + (int)(rnd() % 40001u);
        p.mult[n] = (int32_t)((1u << 30) | (rnd() & 0x3fffffff));
        p.shift[n] = -(shift_lo + (int)(rnd() % (uint32_t)(shift_hi - shift_lo + 1)));
    }
    em_pack_weights(w, N, K, p.pw);
    return p;
}

static void conv_params_free(conv_params *p) {
    free(p->pw); free(p->scratch); free(p->bias); free(p->mult); free(p->shift);
}
#endif
