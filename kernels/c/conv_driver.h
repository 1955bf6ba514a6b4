/* The one chunked CONV_2D driver of the im2col + GEMM paths (conv.c's int16 path, gemm_vnni.c's vpdpbusd paths,
 * gemm_neon.c's SDOT path).  The output pixels (rows m of the GEMM, batch x out_h x out_w) go in
 * chunks of EM_CONV_ROWS (a path with no im2col rows in scratch may take up to EM_CONV_CHUNK_MAX), split across
 * OpenMP threads; for each chunk a path's `fill` states where the GEMM's
 * rows are (im2col rows written into this thread's slice of scratch, or pointers into a prepared image: an
 * indirect GEMM), then its `gemm` multiplies them and writes the chunk's output rows.  Internal to the kernels. */
#ifndef EDGE_MAAS_CONV_DRIVER_H
#define EDGE_MAAS_CONV_DRIVER_H
#include "em_kernels.h"
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    /* rows m0..m1 (m1 - m0 <= EM_CONV_ROWS): set rows[i] to the operand of row m0 + i, writing into buf (this
     * thread's scratch slice) if needed; buf is not shared, and nothing outside it may be written */
    void (*fill)(const em_conv_args *a, const void *ctx, int m0, int m1, void *buf, const void **rows);
    /* out[i * out_c ...] for the n rows of a chunk, out = a->out + m0 * out_c */
    void (*gemm)(const em_conv_args *a, const void *ctx, const void *buf, const void *const *rows, int n,
                 int8_t *out);
    const void *ctx;    /* the path's own data (weights' sections, a prepared image, ...) */
    size_t buf_bytes;   /* each thread's slice of a->scratch, from buf_offset bytes on */
    size_t buf_offset;
    int chunk;          /* rows per chunk, <= EM_CONV_CHUNK_MAX; 0: EM_CONV_ROWS */
} em_conv_path;

/* The most rows of a chunk: an indirect GEMM's row pointers on the stack (2 KiB), its per-chunk setup (each
 * panel's output-stage constants) paid a quarter as often as at EM_CONV_ROWS. */
#define EM_CONV_CHUNK_MAX 256

/* This thread's number inside an OpenMP parallel region (0 without OpenMP): its scratch slice.  A macro, not a
 * function: gcc turns omp_get_thread_num() written in a region's body into a const builtin (one call per thread,
 * shared with the loop's schedule), but not a call inlined there later (a call per iteration). */
#ifdef _OPENMP
#define EM_THREAD_NUM() omp_get_thread_num()
#else
#define EM_THREAD_NUM() 0
#endif

/* The output pixel (batch b, row oy, column ox) of GEMM row m: em_conv_pos_at divides it out once per chunk,
 * em_conv_pos_next steps it to row m + 1. */
typedef struct {
    int b, oy, ox;
} em_conv_pos;

/* The int16 weights by padded filter row (gemm_vnni.c: em_pack_conv_weights' layout for conv.c's conv_rows_avx2):
 * em_pack_weights' array where a filter row is an even count of taps, else its own section; NULL: none packed. */
const int16_t *em_conv_rows16_weights(const em_conv_args *a);

static inline em_conv_pos em_conv_pos_at(const em_conv_args *a, int m) {
    const int hw = a->out_h * a->out_w;
    const em_conv_pos p = {m / hw, (m % hw) / a->out_w, m % a->out_w};
    return p;
}

static inline void em_conv_pos_next(const em_conv_args *a, em_conv_pos *p) {
    if (++p->ox == a->out_w) {
        p->ox = 0;
        if (++p->oy == a->out_h) {
            p->oy = 0;
            p->b++;
        }
    }
}

static inline int em_conv_chunk_rows(const em_conv_path *p) { return p->chunk ? p->chunk : EM_CONV_ROWS; }

static inline void em_conv_chunk(const em_conv_args *a, const em_conv_path *p, int c, int tid) {
    const int M = a->batch * a->out_h * a->out_w, rows_per = em_conv_chunk_rows(p);
    void *buf = (char *)a->scratch + p->buf_offset + (size_t)tid * p->buf_bytes;
    const void *rows[EM_CONV_CHUNK_MAX];
    const int m0 = c * rows_per, m1 = m0 + rows_per < M ? m0 + rows_per : M;
    p->fill(a, p->ctx, m0, m1, buf, rows);
    p->gemm(a, p->ctx, buf, rows, m1 - m0, a->out + (size_t)m0 * a->out_c);
}

static inline void em_conv_run(const em_conv_args *a, const em_conv_path *p) {
    const int rows_per = em_conv_chunk_rows(p);
    const int chunks = (a->batch * a->out_h * a->out_w + rows_per - 1) / rows_per;
    if (a->threads <= 1) { /* no parallel region: it costs more than a small layer */
        for (int c = 0; c < chunks; c++) em_conv_chunk(a, p, c, 0);
        return;
    }
#pragma omp parallel for num_threads(a->threads) schedule(static)
    for (int c = 0; c < chunks; c++) em_conv_chunk(a, p, c, EM_THREAD_NUM());
}

#endif
