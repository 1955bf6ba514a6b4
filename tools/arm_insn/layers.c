/* Runs the CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED layers of a model (their shapes on stdin, as
 * tools/arm_insn/count.py writes them) on one instruction-set path, REPS times, with random int8 data: the
 * workload whose executed aarch64 instructions count.py counts under qemu-user.  Not a test: outputs unchecked
 * (tests/c checks the paths' bytes).
 * Usage: layers PATH REPS < shapes     PATH: portable | neon | dotprod
 * shapes lines:  conv b h w c oc kh kw sh sw dh dw pt pl oh ow
 *                dw   b h w c dm kh kw sh sw dh dw pt pl oh ow
 *                fc   rows k n */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "em_kernels.h"

static uint32_t st = 12345;
static uint32_t rnd(void) { st ^= st << 13; st ^= st >> 17; st ^= st << 5; return st; }
static void *rbuf(size_t n) { int8_t *p = malloc(n + 64); for (size_t i = 0; i < n + 64; i++) p[i] = (int8_t)rnd(); return p; }
/* weights as TFLite's int8 quantization makes them (symmetric, [-127, 127]): a -128 sends the neon path's
 * layer to its int16 GEMM (gemm_neon.c), which real models never need */
static int8_t *wbuf(size_t n) { int8_t *p = rbuf(n); for (size_t i = 0; i < n; i++) if (p[i] == -128) p[i] = -127; return p; }

typedef struct { char kind[8]; int v[15]; em_kernel_fn fn; void *args; } layer;

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const int isa = !strcmp(argv[1], "portable") ? EM_ISA_PORTABLE : !strcmp(argv[1], "neon") ? EM_ISA_NEON : EM_ISA_DOTPROD;
    if (em_isa_set(isa) != isa) { fprintf(stderr, "path %s not available\n", argv[1]); return 3; }
    const int reps = atoi(argv[2]);
    layer L[512];
    int nl = 0;
    char kind[8];
    while (nl < 512 && scanf("%7s", kind) == 1) {
        layer *l = &L[nl++];
        strcpy(l->kind, kind);
        const int nv = !strcmp(kind, "fc") ? 3 : 15;
        for (int i = 0; i < nv; i++) if (scanf("%d", &l->v[i]) != 1) return 4;
    }
    for (int i = 0; i < nl; i++) {
        layer *l = &L[i];
        const int *v = l->v;
        if (!strcmp(l->kind, "fc")) {
            const int rows = v[0], K = v[1], N = v[2], np = (N + 15) & ~15, kp = (K + 1) & ~1;
            em_fc_args *a = calloc(1, sizeof *a);
            int8_t *w = wbuf((size_t)N * K);
            int16_t *pw = malloc(em_packed_weights_len(N, K) * 2);
            em_pack_weights(w, N, K, pw);
            int32_t *mult = malloc(np * 4), *shift = malloc(np * 4), *bias = malloc(np * 4);
            for (int c = 0; c < np; c++) { mult[c] = (1 << 30) + (int32_t)(rnd() & 0x3fffffff); shift[c] = -8; bias[c] = (int32_t)(rnd() % 2000) - 1000; }
            *a = (em_fc_args){rbuf((size_t)rows * K), malloc((size_t)rows * N), rows, K, N, 3, pw, bias,
                              {mult, shift, -5, -128, 127, 0}, malloc((size_t)rows * kp * 2 + 64), 1};
            l->fn = em_fully_connected; l->args = a;
        } else {
            const int conv = !strcmp(l->kind, "conv");
            const int b = v[0], h = v[1], wd = v[2], c = v[3], kh = v[5], kw = v[6];
            const int oc = conv ? v[4] : c * v[4], oh = v[13], ow = v[14], np = (oc + 15) & ~15;
            int32_t *mult = malloc(np * 4), *shift = malloc(np * 4), *bias = malloc(np * 4);
            for (int j = 0; j < np; j++) { mult[j] = (1 << 30) + (int32_t)(rnd() & 0x3fffffff); shift[j] = -8; bias[j] = (int32_t)(rnd() % 2000) - 1000; }
            em_requant rq = {mult, shift, -5, -128, 127, conv ? np : 0};
            int8_t *in = rbuf((size_t)b * h * wd * c), *out = malloc((size_t)b * oh * ow * oc);
            if (conv) {
                const int K = kh * kw * c, kp = em_conv_kp(kh, kw, c);
                int8_t *w = wbuf((size_t)oc * K);
                int16_t *pw = malloc(em_packed_weights_len(oc, K) * 2);
                em_pack_weights(w, oc, K, pw);
                em_conv_args *a = calloc(1, sizeof *a);
                *a = (em_conv_args){in, out, b, h, wd, c, oh, ow, oc, kh, kw, v[7], v[8], v[9], v[10], v[11], v[12],
                                    3, pw, bias, rq, malloc((size_t)EM_CONV_ROWS * kp * 2 + 64), 1};
                l->fn = em_conv2d; l->args = a;
            } else {
                int16_t *w = malloc((size_t)kh * kw * oc * 2);
                for (int j = 0; j < kh * kw * oc; j++) w[j] = (int16_t)((int)(rnd() % 255) - 127);
                em_dwconv_args *a = calloc(1, sizeof *a);
                *a = (em_dwconv_args){in, out, b, h, wd, c, oh, ow, oc, v[4], kh, kw, v[7], v[8], v[9], v[10], v[11],
                                      v[12], 3, w, bias, rq, malloc((size_t)np * 4), 1};
                l->fn = em_depthwise_conv2d; l->args = a;
            }
        }
    }
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < nl; i++) L[i].fn(L[i].args);
    printf("%d layers x %d\n", nl, reps);
    return 0;
}
