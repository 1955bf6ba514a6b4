/* REDUCE_MAX / REDUCE_MIN on int8: the stored values compared (reduce.cc requires the input and output to share
 * one quantization, so the raw maximum is the real one).  The input is read once in order, a 5-D box (axes merged
 * by the lowering), each value folded into the output position out_strides selects (0 on reduced axes); the
 * output starts at -128 (max) or 127 (min), the identity, as the interpreter's init value (numeric lowest / max).
 *
 * Max and min are exact in any order, so the vector paths fold whole registers: a reduced inner axis is a row
 * folded into one lane-wise accumulator, then across its lanes; a kept inner axis (the global pooling of a feature
 * map: H, W reduced, C kept) folds the reduced rows that share one output row column block by column block, the
 * block's accumulators held in registers across those rows (no read-modify-write of the output per row). */
#include "requant.h" /* EM_HAVE_AVX2 / EM_AVX2 and the NEON header */

static inline int8_t pick(int8_t a, int8_t b, int is_max) { return is_max ? (a > b ? a : b) : (a < b ? a : b); }

/* The fold of m and x[0..n). */
static inline int8_t fold_row(const int8_t *x, int n, int8_t m, int is_max) {
    for (int j = 0; j < n; j++) m = pick(x[j], m, is_max);
    return m;
}

/* y[j] folded with x[r * stride + j] for r < rows, j < n. */
static inline void fold_rows(const int8_t *x, long stride, int rows, int8_t *restrict y, int n, int is_max) {
    for (int r = 0; r < rows; r++, x += stride)
        for (int j = 0; j < n; j++) y[j] = pick(x[j], y[j], is_max);
}

#ifdef EM_HAVE_AVX2

static inline EM_AVX2 __m256i pick256(__m256i a, __m256i b, int is_max) {
    return is_max ? _mm256_max_epi8(a, b) : _mm256_min_epi8(a, b);
}

static inline EM_AVX2 int8_t fold_row_avx2(const int8_t *x, int n, int8_t m, int is_max) {
    int j = 0;
    if (n >= 32) {
        __m256i acc = _mm256_set1_epi8(m);
        for (; j + 32 <= n; j += 32) acc = pick256(acc, _mm256_loadu_si256((const __m256i *)(x + j)), is_max);
        int8_t lanes[32];
        _mm256_storeu_si256((__m256i *)lanes, acc);
        m = fold_row(lanes, 32, m, is_max);
    }
    return fold_row(x + j, n - j, m, is_max);
}

/* fold_rows, 128 output bytes (4 registers) at a time across all rows, then 32, then the scalar tail. */
static inline EM_AVX2 void fold_rows_avx2(const int8_t *x, long stride, int rows, int8_t *y, int n, int is_max) {
    int j = 0;
    for (; j + 128 <= n; j += 128) {
        __m256i a[4];
        for (int k = 0; k < 4; k++) a[k] = _mm256_loadu_si256((const __m256i *)(y + j + 32 * k));
        const int8_t *p = x + j;
        for (int r = 0; r < rows; r++, p += stride)
            for (int k = 0; k < 4; k++) a[k] = pick256(a[k], _mm256_loadu_si256((const __m256i *)(p + 32 * k)), is_max);
        for (int k = 0; k < 4; k++) _mm256_storeu_si256((__m256i *)(y + j + 32 * k), a[k]);
    }
    for (; j + 32 <= n; j += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(y + j));
        const int8_t *p = x + j;
        for (int r = 0; r < rows; r++, p += stride) a = pick256(a, _mm256_loadu_si256((const __m256i *)p), is_max);
        _mm256_storeu_si256((__m256i *)(y + j), a);
    }
    if (j < n) fold_rows(x + j, stride, rows, y + j, n - j, is_max);
}

static inline EM_AVX512 __m512i pick512(__m512i a, __m512i b, int is_max) {
    return is_max ? _mm512_max_epi8(a, b) : _mm512_min_epi8(a, b);
}

static inline EM_AVX512 int8_t fold_row_avx512(const int8_t *x, int n, int8_t m, int is_max) {
    int j = 0;
    if (n >= 64) {
        __m512i acc = _mm512_set1_epi8(m);
        for (; j + 64 <= n; j += 64) acc = pick512(acc, _mm512_loadu_si512(x + j), is_max);
        int8_t lanes[64];
        _mm512_storeu_si512(lanes, acc);
        m = fold_row(lanes, 64, m, is_max);
    }
    return fold_row_avx2(x + j, n - j, m, is_max);
}

/* fold_rows, 256 output bytes (4 registers) at a time, then 64, then masked (the tail: loads and stores of the
 * first n - j bytes only). */
static inline EM_AVX512 void fold_rows_avx512(const int8_t *x, long stride, int rows, int8_t *y, int n, int is_max) {
    int j = 0;
    for (; j + 256 <= n; j += 256) {
        __m512i a[4];
        for (int k = 0; k < 4; k++) a[k] = _mm512_loadu_si512(y + j + 64 * k);
        const int8_t *p = x + j;
        for (int r = 0; r < rows; r++, p += stride)
            for (int k = 0; k < 4; k++) a[k] = pick512(a[k], _mm512_loadu_si512(p + 64 * k), is_max);
        for (int k = 0; k < 4; k++) _mm512_storeu_si512(y + j + 64 * k, a[k]);
    }
    for (; j < n; j += 64) {
        const __mmask64 mk = n - j >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n - j)) - 1);
        __m512i a = _mm512_maskz_loadu_epi8(mk, y + j);
        const int8_t *p = x + j;
        for (int r = 0; r < rows; r++, p += stride) a = pick512(a, _mm512_maskz_loadu_epi8(mk, p), is_max);
        _mm512_mask_storeu_epi8(y + j, mk, a);
    }
}
#endif

#ifdef EM_HAVE_NEON
static inline int8x16_t pick_neon(int8x16_t a, int8x16_t b, int is_max) { return is_max ? vmaxq_s8(a, b) : vminq_s8(a, b); }

static inline int8_t fold_row_neon(const int8_t *x, int n, int8_t m, int is_max) {
    int j = 0;
    if (n >= 16) {
        int8x16_t acc = vdupq_n_s8(m);
        for (; j + 16 <= n; j += 16) acc = pick_neon(acc, vld1q_s8(x + j), is_max);
        m = is_max ? vmaxvq_s8(acc) : vminvq_s8(acc);
    }
    return fold_row(x + j, n - j, m, is_max);
}

/* fold_rows, 64 output bytes (4 registers) at a time, then 16, then the scalar tail. */
static inline void fold_rows_neon(const int8_t *x, long stride, int rows, int8_t *y, int n, int is_max) {
    int j = 0;
    for (; j + 64 <= n; j += 64) {
        int8x16_t a[4];
        for (int k = 0; k < 4; k++) a[k] = vld1q_s8(y + j + 16 * k);
        const int8_t *p = x + j;
        for (int r = 0; r < rows; r++, p += stride)
            for (int k = 0; k < 4; k++) a[k] = pick_neon(a[k], vld1q_s8(p + 16 * k), is_max);
        for (int k = 0; k < 4; k++) vst1q_s8(y + j + 16 * k, a[k]);
    }
    for (; j + 16 <= n; j += 16) {
        int8x16_t a = vld1q_s8(y + j);
        const int8_t *p = x + j;
        for (int r = 0; r < rows; r++, p += stride) a = pick_neon(a, vld1q_s8(p), is_max);
        vst1q_s8(y + j, a);
    }
    if (j < n) fold_rows(x + j, stride, rows, y + j, n - j, is_max);
}
#endif

/* The box walk for one comparison (is_max a constant where inlined) on one path (isa).  When axis 3 is reduced and
 * axis 4 kept, the d[3] rows of one (i0, i1, i2) share their output row and are folded together. */
static inline void reduce(const em_reduce_args *a, int is_max, int isa) {
    (void)isa;
    const int8_t init = is_max ? -128 : 127;
    int8_t *out = a->out;
    for (long i = 0; i < a->out_size; i++) out[i] = init;
    const int8_t *x = a->in;
    int d[5];
    long s[5];
    for (int k = 0; k < 5; k++) d[k] = a->dims[k], s[k] = a->out_strides[k]; /* locals: out may alias *a */
    const int together = s[3] == 0 && s[4] != 0 ? d[3] : 1;                 /* rows folded at once */
    for (int i0 = 0; i0 < d[0]; i0++)
        for (int i1 = 0; i1 < d[1]; i1++)
            for (int i2 = 0; i2 < d[2]; i2++)
                for (int i3 = 0; i3 < d[3]; i3 += together, x += (long)d[4] * together) {
                    int8_t *y = out + i0 * s[0] + i1 * s[1] + i2 * s[2] + i3 * s[3];
                    if (s[4] == 0) { /* the inner axis is reduced: one output for the row */
#ifdef EM_HAVE_AVX2
                        if (isa == EM_ISA_AVX512VNNI) { *y = fold_row_avx512(x, d[4], *y, is_max); continue; }
                        if (isa >= EM_ISA_AVX2) { *y = fold_row_avx2(x, d[4], *y, is_max); continue; }
#endif
#ifdef EM_HAVE_NEON
                        if (isa >= EM_ISA_NEON) { *y = fold_row_neon(x, d[4], *y, is_max); continue; }
#endif
                        *y = fold_row(x, d[4], *y, is_max);
                        continue;
                    }
                    /* y (the kept inner axis, stride 1) never overlaps the input: the output is its own tensor */
#ifdef EM_HAVE_AVX2
                    if (isa == EM_ISA_AVX512VNNI) { fold_rows_avx512(x, d[4], together, y, d[4], is_max); continue; }
                    if (isa >= EM_ISA_AVX2) { fold_rows_avx2(x, d[4], together, y, d[4], is_max); continue; }
#endif
#ifdef EM_HAVE_NEON
                    if (isa >= EM_ISA_NEON) { fold_rows_neon(x, d[4], together, y, d[4], is_max); continue; }
#endif
                    fold_rows(x, d[4], together, y, d[4], is_max);
                }
}

#ifdef EM_HAVE_AVX2
static EM_AVX512 void reduce_avx512(const em_reduce_args *a, int is_max) {
    if (is_max) reduce(a, 1, EM_ISA_AVX512VNNI);
    else reduce(a, 0, EM_ISA_AVX512VNNI);
}

static EM_AVX2 void reduce_avx2(const em_reduce_args *a, int is_max) {
    if (is_max) reduce(a, 1, EM_ISA_AVX2);
    else reduce(a, 0, EM_ISA_AVX2);
}
#endif

void em_reduce_max(const void *args) {
    const em_reduce_args *a = (const em_reduce_args *)args;
    const int isa = em_isa_get();
#ifdef EM_HAVE_AVX2
    if (isa == EM_ISA_AVX512VNNI) { reduce_avx512(a, a->is_max); return; }
    if (isa >= EM_ISA_AVX2) { reduce_avx2(a, a->is_max); return; }
#endif
#ifdef EM_HAVE_NEON
    if (isa >= EM_ISA_NEON) {
        if (a->is_max) reduce(a, 1, EM_ISA_NEON);
        else reduce(a, 0, EM_ISA_NEON);
        return;
    }
#endif
    if (a->is_max) reduce(a, 1, EM_ISA_PORTABLE);
    else reduce(a, 0, EM_ISA_PORTABLE);
}
