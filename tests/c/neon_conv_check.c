/* Checks CONV_2D and FULLY_CONNECTED on the neon and dotprod paths (gemm_neon.c: int16 smlal GEMM; int8 im2col
 * + sdot GEMM with the column-sum offset term) against the portable path, byte for byte, on random shapes:
 * padding on every side, strides, dilations, pointwise convs, channel counts that leave partial 16-channel
 * panels, K not a multiple of 4, several batches; the input ends at a PROT_NONE page (the im2col's 16-byte
 * blocks must stay inside it); odd cases on 2 OpenMP threads.  Built for aarch64 with the kernels and run
 * under qemu-user (whose default CPU has the dot product) by tests/test_neon_kernels.py.  Exits 1 on any
 * difference; on a CPU without the dot product it checks the neon path only and says so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "em_kernels.h"
#include "conv_case.h"
#include "guarded.h"

static uint64_t s = 0x2545F4914F6CDD1DULL;
static uint32_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (uint32_t)s; }
static int rr(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

int main(void) {
    const int np_ = em_isa_supported(EM_ISA_DOTPROD) ? 3 : 2; /* portable, neon[, dotprod] */
    long bad = 0, cases = 0;
    const int paths[2] = {EM_ISA_NEON, EM_ISA_DOTPROD};
    for (int it = 0; it < 200; it++) {
        em_conv_args a;
        memset(&a, 0, sizeof a);
        a.batch = rr(1, 2); a.in_h = rr(1, 9); a.in_w = rr(1, 9); a.in_c = rr(1, 20); a.out_c = rr(1, 40);
        const int pointwise = it % 4 == 0;
        a.k_h = pointwise ? 1 : rr(1, 3); a.k_w = pointwise ? 1 : rr(1, 3);
        a.stride_h = pointwise ? 1 : rr(1, 2); a.stride_w = pointwise ? 1 : rr(1, 2);
        a.dil_h = pointwise ? 1 : rr(1, 2); a.dil_w = pointwise ? 1 : rr(1, 2);
        const int same = !pointwise && (it % 2);
        const int eh = (a.k_h - 1) * a.dil_h + 1, ew = (a.k_w - 1) * a.dil_w + 1;
        if (same) {
            a.out_h = (a.in_h + a.stride_h - 1) / a.stride_h; a.out_w = (a.in_w + a.stride_w - 1) / a.stride_w;
            int ph = (a.out_h - 1) * a.stride_h + eh - a.in_h, pw = (a.out_w - 1) * a.stride_w + ew - a.in_w;
            a.pad_top = ph > 0 ? ph / 2 : 0; a.pad_left = pw > 0 ? pw / 2 : 0;
        } else {
            if (a.in_h < eh) a.in_h = eh;
            if (a.in_w < ew) a.in_w = ew;
            a.out_h = (a.in_h - eh) / a.stride_h + 1; a.out_w = (a.in_w - ew) / a.stride_w + 1;
        }
        const int K = a.k_h * a.k_w * a.in_c, N = a.out_c, np = (N + 15) & ~15;
        const int M = a.batch * a.out_h * a.out_w, kp = em_conv_kp(a.k_h, a.k_w, a.in_c);
        const size_t nin = (size_t)a.batch * a.in_h * a.in_w * a.in_c;
        void *map;
        size_t maplen;
        int8_t *in = guarded(nin, &map, &maplen), *w = malloc((size_t)N * K), *o[3];
        for (size_t i = 0; i < nin; i++) in[i] = (int8_t)rnd();
        for (int i = 0; i < N * K; i++) w[i] = (int8_t)rr(-127, 127);
        /* 2 threads' slices: odd cases run on 2 OpenMP threads (rows split; the bytes must not change) */
        conv_params cp = conv_params_new(w, N, K, kp, np, 0, 11, rnd);
        a.in = in; a.w = cp.pw; a.bias = cp.bias; a.scratch = cp.scratch; a.threads = 1 + it % 2;
        a.in_offset = rr(-127, 128);
        a.rq = (em_requant){cp.mult, cp.shift, rr(-128, 127), -128, 127, rr(0, N)};
        for (int p = 0; p < np_; p++) {
            o[p] = malloc((size_t)M * N);
            em_isa_set(p == 0 ? EM_ISA_PORTABLE : paths[p - 1]);
            a.out = o[p];
            em_conv2d(&a);
        }
        for (int p = 1; p < np_; p++)
            if (memcmp(o[0], o[p], (size_t)M * N)) {
                bad++;
                printf("conv differs on %s: b %d %dx%dx%d k %dx%d s %d,%d d %d,%d pad %d,%d out_c %d\n",
                       p == 1 ? "neon" : "dotprod", a.batch, a.in_h, a.in_w, a.in_c, a.k_h, a.k_w, a.stride_h,
                       a.stride_w, a.dil_h, a.dil_w, a.pad_top, a.pad_left, N);
            }
        /* FULLY_CONNECTED: the same weights as units x K, rows = the input's first pixels */
        em_fc_args f;
        memset(&f, 0, sizeof f);
        f.rows = rr(1, 9); f.in_features = K; f.units = N; f.in_offset = a.in_offset;
        int8_t *fin = malloc((size_t)f.rows * K);
        for (int i = 0; i < f.rows * K; i++) fin[i] = (int8_t)rnd();
        int16_t *fs = malloc((size_t)f.rows * kp * 2);
        f.in = fin; f.w = cp.pw; f.bias = cp.bias; f.rq = a.rq; f.scratch = fs; f.threads = 1;
        int8_t *fo[3];
        for (int p = 0; p < np_; p++) {
            fo[p] = malloc((size_t)f.rows * N);
            em_isa_set(p == 0 ? EM_ISA_PORTABLE : paths[p - 1]);
            f.out = fo[p];
            em_fully_connected(&f);
        }
        for (int p = 1; p < np_; p++)
            if (memcmp(fo[0], fo[p], (size_t)f.rows * N)) {
                bad++;
                printf("fully connected differs on %s: rows %d K %d units %d\n", p == 1 ? "neon" : "dotprod", f.rows, K, N);
            }
        cases++;
        for (int p = 0; p < np_; p++) { free(o[p]); free(fo[p]); }
        munmap(map, maplen); free(w); conv_params_free(&cp); free(fin); free(fs);
    }
    printf("%ld conv + fully connected cases, %ld differ%s\n", cases, bad, np_ == 3 ? "" : " (neon only: no dotprod)");
    return bad != 0;
}
