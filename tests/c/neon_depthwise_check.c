/* Checks DEPTHWISE_CONV_2D on the neon path (depthwise_neon.c: every depth multiplier) against the portable
 * path, byte for byte: channel counts around multiples of 16 (partial groups), fewer than 16 channels,
 * multipliers 1-5, 8, 16 (one input channel feeds a whole group), 24, filters up to 5x5 (some 1x1 and
 * 17x17 = 289 taps, past the NEON path's stack copy, which then leaves the op to the portable body), padding,
 * strides, dilations, batches.  The input ends at a PROT_NONE page, so a load past the tensor (the gather
 * reads 16 bytes from a group's first channel) faults.  Built for aarch64 and run under qemu-user by
 * tests/test_neon_kernels.py.  Exits 1 on any difference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "em_kernels.h"
#include "guarded.h"

static uint64_t s = 0x853C49E6748FEA9BULL;
static uint32_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (uint32_t)s; }
static int rr(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

int main(void) {
    long bad = 0, cases = 0;
    static const int dms[] = {1, 2, 3, 4, 5, 8, 16, 24};
    for (int it = 0; it < 600; it++) {
        em_dwconv_args a;
        memset(&a, 0, sizeof a);
        a.batch = rr(1, 2); a.in_h = rr(1, 8); a.in_w = rr(1, 8);
        a.depth_mult = it % 2 ? dms[rr(0, 7)] : 1;
        a.in_c = it % 3 ? rr(1, a.depth_mult > 4 ? 6 : 40) : (a.depth_mult == 1 ? 16 * rr(1, 3) : rr(1, 3));
        a.out_c = a.in_c * a.depth_mult;
        const int big = it % 50 == 7, one = it % 10 == 4;
        a.k_h = big ? 17 : one ? 1 : rr(1, 5); a.k_w = big ? 17 : one ? 1 : rr(1, 5);
        if (big) a.in_h = a.in_w = 8;
        a.stride_h = rr(1, 2); a.stride_w = rr(1, 2);
        a.dil_h = rr(1, 2); a.dil_w = rr(1, 2);
        a.out_h = (a.in_h + a.stride_h - 1) / a.stride_h; a.out_w = (a.in_w + a.stride_w - 1) / a.stride_w;
        const int eh = (a.k_h - 1) * a.dil_h + 1, ew = (a.k_w - 1) * a.dil_w + 1;
        const int ph = (a.out_h - 1) * a.stride_h + eh - a.in_h, pw = (a.out_w - 1) * a.stride_w + ew - a.in_w;
        a.pad_top = ph > 0 ? ph / 2 : 0; a.pad_left = pw > 0 ? pw / 2 : 0;
        const int C = a.out_c, cp = (C + 15) & ~15;
        const size_t nin = (size_t)a.batch * a.in_h * a.in_w * a.in_c, nout = (size_t)a.batch * a.out_h * a.out_w * C;
        void *map;
        size_t maplen;
        int8_t *in = guarded(nin, &map, &maplen), *o0 = malloc(nout), *o1 = malloc(nout);
        int16_t *w = malloc((size_t)a.k_h * a.k_w * C * 2);
        int32_t *bias = calloc(cp, 4), *mult = calloc(cp, 4), *shift = calloc(cp, 4), *scratch = calloc(cp, 4);
        for (size_t i = 0; i < nin; i++) in[i] = (int8_t)rnd();
        for (int i = 0; i < a.k_h * a.k_w * C; i++) w[i] = (int16_t)rr(-127, 127);
        for (int c = 0; c < C; c++) {
            bias[c] = rr(-20000, 20000);
            mult[c] = (int32_t)((1u << 30) | (rnd() & 0x3fffffff));
            shift[c] = -rr(0, 10);
        }
        a.in = in; a.w = w; a.bias = bias; a.scratch = scratch; a.threads = 1; a.in_offset = rr(-127, 128);
        a.rq = (em_requant){mult, shift, rr(-128, 127), -128, 127, rr(0, C)};
        em_isa_set(EM_ISA_PORTABLE);
        a.out = o0;
        em_depthwise_conv2d(&a);
        if (em_isa_set(EM_ISA_NEON) != EM_ISA_NEON) { printf("no neon path\n"); return 1; }
        a.out = o1;
        em_depthwise_conv2d(&a);
        cases++;
        if (memcmp(o0, o1, nout)) {
            bad++;
            printf("depthwise differs: b %d %dx%dx%d dm %d k %dx%d s %d,%d d %d,%d\n", a.batch, a.in_h, a.in_w, a.in_c,
                   a.depth_mult, a.k_h, a.k_w, a.stride_h, a.stride_w, a.dil_h, a.dil_w);
        }
        munmap(map, maplen); free(o0); free(o1); free(w); free(bias); free(mult); free(shift); free(scratch);
    }
    printf("%ld depthwise cases, %ld differ\n", cases, bad);
    return bad != 0;
}
