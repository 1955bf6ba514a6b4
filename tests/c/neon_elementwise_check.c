/* Checks the NEON paths of ADD, SUB, MUL (add.c, mul.c), MAX/AVERAGE_POOL_2D (pooling.c), MEAN (mean.c) and
 * the standalone output stage (requantize_rows.c) against the portable path, byte for byte: rows of every
 * length around the 16-lane runs, broadcast scalars along the row (ADD's 8-element wrap blocks), each
 * requantization shift, SUB's negated multiplier, outputs far outside int8 (ADD's int16 wrap, MUL's
 * saturation), channel counts around 16 and the pooling chunk (64), clipped and large windows, per-channel
 * rounding splits.  Built for aarch64 and run under qemu-user by tests/test_neon_kernels.py.  Exits 1 on any
 * difference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "em_kernels.h"

static uint64_t s = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (uint32_t)s; }
static int rr(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }
static int32_t mult(void) {
    const int k = rr(0, 3);
    return k == 0 ? (1 << 30) : k == 1 ? 0x7fffffff : (int32_t)((1u << 30) | (rnd() & 0x3fffffff));
}

/* Runs fn on args on the portable path into o0 and on neon into o1 (n bytes each, `out` aliases one of them). */
static int differs(em_kernel_fn fn, const void *args, int8_t **out, int8_t *o0, int8_t *o1, size_t n) {
    em_isa_set(EM_ISA_PORTABLE);
    *out = o0;
    fn(args);
    if (em_isa_set(EM_ISA_NEON) != EM_ISA_NEON) { printf("no neon path\n"); exit(1); }
    *out = o1;
    fn(args);
    return memcmp(o0, o1, n) != 0;
}

static long binary_cases(void) {
    long bad = 0;
    for (int it = 0; it < 1500; it++) {
        const int kind = it % 3; /* add, sub, mul */
        em_binary_args a;
        memset(&a, 0, sizeof a);
        const int n = it % 5 == 0 ? rr(100, 300) : rr(1, 50), rows = rr(1, 4);
        const int t1 = it % 7 == 1 ? 0 : 1, t2 = it % 7 == 2 ? 0 : 1;
        const int o1 = rr(0, 1) * (t1 ? n : 1), o2 = rr(0, 1) * (t2 ? n : 1);
        for (int d = 0; d < 3; d++) a.dims[d] = 1;
        a.dims[3] = rows; a.dims[4] = n;
        a.s1[3] = o1; a.s1[4] = t1; a.s2[3] = o2; a.s2[4] = t2;
        const size_t n1 = (size_t)(rows - 1) * o1 + (size_t)(n - 1) * t1 + 1;
        const size_t n2 = (size_t)(rows - 1) * o2 + (size_t)(n - 1) * t2 + 1, nout = (size_t)rows * n;
        int8_t *x1 = malloc(n1), *x2 = malloc(n2), *r0 = malloc(nout), *r1 = malloc(nout);
        for (size_t i = 0; i < n1; i++) x1[i] = (int8_t)rnd();
        for (size_t i = 0; i < n2; i++) x2[i] = (int8_t)rnd();
        a.in1 = x1; a.in2 = x2;
        a.in1_offset = rr(-127, 128); a.in2_offset = rr(-127, 128); a.out_offset = rr(-128, 127);
        a.act_min = -128; a.act_max = 127;
        if (it % 4 == 3) { a.act_min = rr(-128, 0); a.act_max = rr(0, 127); }
        if (kind < 2) {
            const int half = rr(0, 2);
            a.in1_mult = half == 1 ? 1 << 30 : mult(); a.in1_shift = half == 1 ? 0 : -rr(0, 30);
            a.in2_mult = half == 2 ? 1 << 30 : mult(); a.in2_shift = half == 2 ? 0 : -rr(0, 30);
            if (kind == 1) a.in2_mult = -a.in2_mult;
            a.out_mult = mult(); a.out_shift = it % 3 ? -rr(8, 22) : -rr(0, 30);
            a.left_shift = 20;
            /* a small left shift and output shift make each input term's rounding show in the output bytes */
            if (it % 4 == 1) { a.left_shift = rr(1, 3); a.out_shift = -rr(0, 2); }
        } else {
            a.out_mult = mult(); a.out_shift = rr(-31, 4);
        }
        em_kernel_fn fn = kind == 0 ? em_add : kind == 1 ? em_sub : em_mul;
        if (differs(fn, &a, &a.out, r0, r1, nout)) {
            bad++;
            printf("%s differs: rows %d n %d strides %d,%d shifts %d %d %d\n", kind == 0 ? "add" : kind == 1 ? "sub" : "mul",
                   rows, n, t1, t2, a.in1_shift, a.in2_shift, a.out_shift);
        }
        free(x1); free(x2); free(r0); free(r1);
    }
    return bad;
}

static long pool_cases(void) {
    long bad = 0;
    static const int chans[] = {1, 15, 16, 17, 31, 33, 64, 65, 80, 130};
    for (int it = 0; it < 400; it++) {
        em_pool_args a;
        memset(&a, 0, sizeof a);
        a.batch = rr(1, 2); a.channels = chans[it % 10];
        a.in_h = rr(1, 9); a.in_w = rr(1, 9); a.k_h = rr(1, 5); a.k_w = rr(1, 5);
        if (it % 20 == 19) a.in_h = a.in_w = a.k_h = a.k_w = 24;
        a.stride_h = rr(1, 2); a.stride_w = rr(1, 2);
        a.pad_top = rr(0, a.k_h - 1); a.pad_left = rr(0, a.k_w - 1);
        a.out_h = (a.in_h + 2 * a.pad_top - a.k_h) / a.stride_h + 1;
        a.out_w = (a.in_w + 2 * a.pad_left - a.k_w) / a.stride_w + 1;
        if (a.out_h < 1) a.out_h = 1;
        if (a.out_w < 1) a.out_w = 1;
        a.act_min = -128; a.act_max = 127;
        if (it % 4 == 3) { a.act_min = rr(-128, 0); a.act_max = rr(0, 127); }
        const size_t nin = (size_t)a.batch * a.in_h * a.in_w * a.channels;
        const size_t nout = (size_t)a.batch * a.out_h * a.out_w * a.channels;
        int8_t *in = malloc(nin), *r0 = malloc(nout), *r1 = malloc(nout);
        static const int8_t extremes[] = {-128, 127, -1, 0, 1};
        for (size_t i = 0; i < nin; i++) in[i] = it % 3 ? (int8_t)rnd() : extremes[rnd() % 5];
        a.in = in;
        const int avg = it % 2;
        if (differs(avg ? em_average_pool : em_max_pool, &a, &a.out, r0, r1, nout)) {
            bad++;
            printf("%s pool differs: %dx%dx%d k %dx%d\n", avg ? "average" : "max", a.in_h, a.in_w, a.channels, a.k_h,
                   a.k_w);
        }
        free(in); free(r0); free(r1);
    }
    return bad;
}

static long mean_and_rows_cases(void) {
    long bad = 0;
    static const int inners[] = {1, 15, 16, 17, 31, 32, 33, 48, 70, 1280};
    for (int it = 0; it < 400; it++) {
        const int inner = inners[it % 10], cp = (inner + 15) & ~15, outer = rr(1, 2), count = rr(1, 60);
        int32_t *m = calloc(cp, 4), *sh = calloc(cp, 4), *acc = calloc((size_t)outer * count * cp, 4);
        int8_t *in = malloc((size_t)outer * count * inner);
        int8_t *r0 = malloc((size_t)outer * count * inner), *r1 = malloc((size_t)outer * count * inner);
        for (size_t i = 0; i < (size_t)outer * count * inner; i++) in[i] = (int8_t)rnd();
        const em_requant rq0 = {m, sh, rr(-128, 127), -128, 127, rr(0, 1) ? inner - inner % 16 : rr(0, inner)};
        if (it % 2 == 0) { /* MEAN: one multiplier */
            const int32_t mm = mult(), ss = -rr(0, 12);
            for (int c = 0; c < cp; c++) { m[c] = mm; sh[c] = ss; }
            em_mean_args a = {in, NULL, outer, count, inner, rr(-8000, 8000), rq0, acc};
            if (differs(em_mean, &a, &a.out, r0, r1, (size_t)outer * inner)) {
                bad++;
                printf("mean differs: outer %d count %d inner %d\n", outer, count, inner);
            }
        } else { /* requantize_rows: per-channel multipliers and shifts, a clamp */
            for (int c = 0; c < cp; c++) { m[c] = mult(); sh[c] = rr(-20, 2); }
            for (int i = 0; i < outer * count * inner; i++) acc[i] = i % 3 ? (int32_t)(rnd() % 8000000) - 4000000 : rr(-40, 40);
            em_requant_rows_args a = {acc, NULL, (long)outer * count, inner, rq0};
            a.rq.act_min = rr(-128, 0); a.rq.act_max = rr(0, 127);
            if (differs(em_requantize_rows, &a, &a.out, r0, r1, (size_t)outer * count * inner)) {
                bad++;
                printf("requantize_rows differs: rows %d channels %d\n", outer * count, inner);
            }
        }
        free(m); free(sh); free(acc); free(in); free(r0); free(r1);
    }
    return bad;
}

int main(void) {
    const long b = binary_cases(), p = pool_cases(), m = mean_and_rows_cases();
    printf("1500 binary cases, %ld differ; 400 pooling cases, %ld differ; 400 mean/requantize cases, %ld differ\n", b,
           p, m);
    return b + p + m != 0;
}
