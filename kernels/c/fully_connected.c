/* FULLY_CONNECTED: each input row widened to int16 with its offset, then the
 * requantizing GEMM (weights [units][in_features], as TFLite stores them). */
#include "em_kernels.h"

void em_fully_connected(const void *args) {
    const em_fc_args *a = (const em_fc_args *)args;
    if (em_fully_connected_vnni(a)) return; /* vpdpbusd GEMM where a VNNI path is in effect */
#ifdef EM_HAVE_NEON
    if (em_fully_connected_sdot(a)) return; /* sdot GEMM where the dotprod path is in effect */
#endif
    const int kp = (a->in_features + 1) & ~1;
    for (int r = 0; r < a->rows; r++) {
        const int8_t *x = a->in + (size_t)r * a->in_features;
        int16_t *row = a->scratch + (size_t)r * kp;
        em_widen(x, row, (size_t)a->in_features, a->in_offset);
        if (kp > a->in_features) row[kp - 1] = 0;
    }
    em_gemm_args g = {a->rows, a->units, kp, a->scratch, a->w, a->bias, a->rq, a->out, a->units};
    if (a->threads > 1 && a->rows >= 8) {
        const int chunks = (a->rows + 3) / 4;
#pragma omp parallel for num_threads(a->threads) schedule(static)
        for (int c = 0; c < chunks; c++) em_gemm(&g, c * 4, c * 4 + 4 < a->rows ? c * 4 + 4 : a->rows);
    } else {
        em_gemm(&g, 0, a->rows);
    }
}
