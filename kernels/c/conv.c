/* CONV_2D: im2col into int16 rows (input + in_offset, zero where the window
 * leaves the image: padding holds the zero point, which contributes nothing),
 * then the requantizing GEMM.  Rows are split across OpenMP threads. */
#include <string.h>
#include "em_kernels.h"
#ifdef _OPENMP
#include <omp.h>
#endif

int em_conv_kp(int k_h, int k_w, int in_c) { return (k_h * k_w * in_c + 1) & ~1; }

/* A call per short run costs more than it saves: widen runs under 16 inline. */
static inline void widen_small(const int8_t *x, int16_t *y, int n, int32_t off) {
    if (n >= 16) {
        em_widen(x, y, (size_t)n, off);
        return;
    }
    for (int i = 0; i < n; i++) y[i] = (int16_t)(x[i] + off);
}

/* Rows m0..m1 of the im2col matrix into dst (row m at dst + (m - m0) * kp). */
static void im2col_rows(const em_conv_args *a, int kp, int m0, int m1, int16_t *dst) {
    const int hw = a->out_h * a->out_w;
    if (a->k_h == 1 && a->k_w == 1 && a->stride_h == 1 && a->stride_w == 1 && a->pad_top == 0 &&
        a->pad_left == 0 && kp == a->in_c) {
        /* pointwise conv: the rows are the input pixels themselves */
        em_widen(a->in + (size_t)m0 * kp, dst, (size_t)(m1 - m0) * kp, a->in_offset);
        return;
    }
    for (int m = m0; m < m1; m++) {
        int b = m / hw, oy = (m % hw) / a->out_w, ox = m % a->out_w;
        int16_t *row = dst + (size_t)(m - m0) * kp;
        int idx = 0;
        const int run = a->k_w * a->in_c; /* one filter row of taps, contiguous in memory when dil_w == 1 */
        const int ix0 = ox * a->stride_w - a->pad_left;
        const int row_inside = a->dil_w == 1 && ix0 >= 0 && ix0 + a->k_w <= a->in_w;
        for (int kh = 0; kh < a->k_h; kh++) {
            int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
            if (iy < 0 || iy >= a->in_h) {
                memset(row + idx, 0, (size_t)run * sizeof(int16_t));
                idx += run;
                continue;
            }
            const int8_t *line = a->in + ((size_t)b * a->in_h + iy) * a->in_w * a->in_c;
            if (row_inside) {
                widen_small(line + (size_t)ix0 * a->in_c, row + idx, run, a->in_offset);
                idx += run;
                continue;
            }
            for (int kw = 0; kw < a->k_w; kw++) {
                int ix = ix0 + kw * a->dil_w;
                if (ix < 0 || ix >= a->in_w)
                    memset(row + idx, 0, (size_t)a->in_c * sizeof(int16_t));
                else
                    widen_small(line + (size_t)ix * a->in_c, row + idx, a->in_c, a->in_offset);
                idx += a->in_c;
            }
        }
        for (; idx < kp; idx++) row[idx] = 0;
    }
}

void em_conv2d(const void *args) {
    const em_conv_args *a = (const em_conv_args *)args;
    if (em_conv2d_vnni(a)) return; /* u8 im2col + vpdpbusd GEMM where a VNNI path is in effect */
#ifdef EM_HAVE_NEON
    if (em_conv2d_sdot(a)) return; /* int8 im2col + sdot GEMM where the dotprod path is in effect */
#endif
    const int M = a->batch * a->out_h * a->out_w;
    const int kp = em_conv_kp(a->k_h, a->k_w, a->in_c);
    /* Chunks of EM_CONV_ROWS rows (a multiple of the GEMM's 4-row tile): each
     * thread widens a chunk into its own slice of scratch, then multiplies it,
     * so scratch stays threads x EM_CONV_ROWS rows whatever the image size. */
    const int chunks = (M + EM_CONV_ROWS - 1) / EM_CONV_ROWS;
#pragma omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)
    for (int c = 0; c < chunks; c++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        int16_t *buf = a->scratch + (size_t)tid * EM_CONV_ROWS * kp;
        int m0 = c * EM_CONV_ROWS, m1 = m0 + EM_CONV_ROWS < M ? m0 + EM_CONV_ROWS : M;
        im2col_rows(a, kp, m0, m1, buf);
        em_gemm_args g = {m1 - m0, a->out_c, kp, buf, a->w, a->bias, a->rq, a->out + (size_t)m0 * a->out_c, a->out_c};
        em_gemm(&g, 0, m1 - m0);
    }
}
