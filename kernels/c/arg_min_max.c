/* ARG_MAX / ARG_MIN over one axis of an int8 (or uint8) tensor viewed as [outer][axis][inner], int32 or int64
 * indices out.  The interpreter (arg_min_max.cc -> optimized_ops::ArgMinMax: ArgMaxVector on the last axis,
 * reference_ops::ArgMinMax otherwise) keeps the first index on ties in both paths (strict comparison), as here.
 * inner > 1: the running best of a whole row of inner positions is kept in scratch so the input is read in
 * order. */
#include <string.h>
#include "em_kernels.h"

/* inner == 1 (the last axis, the common case): one contiguous row per output, the comparison fixed per loop so
 * compilers keep it branch-light. */
#define ROWS(T, CMP)                                                                            \
    for (long o = 0; o < a->outer; o++) {                                                       \
        const T *x = (const T *)a->in + o * A;                                                  \
        T best = x[0];                                                                          \
        int32_t bi = 0;                                                                         \
        for (int i = 1; i < A; i++)                                                             \
            if (x[i] CMP best) { best = x[i]; bi = i; }                                         \
        if (a->out64) ((int64_t *)a->out)[o] = bi; else ((int32_t *)a->out)[o] = bi;            \
    }

#define BETTER(a, b) (is_max ? (a) > (b) : (a) < (b))

void em_arg_min_max(const void *args) {
    const em_arg_min_max_args *a = (const em_arg_min_max_args *)args;
    const int is_max = a->is_max, A = a->axis_size, inner = a->inner;
    if (inner == 1) {
        if (a->is_unsigned) {
            if (is_max) { ROWS(uint8_t, >) } else { ROWS(uint8_t, <) }
        } else {
            if (is_max) { ROWS(int8_t, >) } else { ROWS(int8_t, <) }
        }
        return;
    }
    int32_t *best = a->scratch, *idx = a->scratch + inner;
    for (long o = 0; o < a->outer; o++) {
        const int8_t *x = a->in + o * (long)A * inner;
        const uint8_t *u = (const uint8_t *)x;
        for (int j = 0; j < inner; j++) { best[j] = a->is_unsigned ? u[j] : x[j]; idx[j] = 0; }
        for (int i = 1; i < A; i++) {
            const long base = (long)i * inner;
            for (int j = 0; j < inner; j++) {
                const int32_t v = a->is_unsigned ? u[base + j] : x[base + j];
                if (BETTER(v, best[j])) { best[j] = v; idx[j] = i; }
            }
        }
        if (a->out64) {
            int64_t *y = (int64_t *)a->out + o * inner;
            for (int j = 0; j < inner; j++) y[j] = idx[j];
        } else {
            memcpy((int32_t *)a->out + o * inner, idx, (size_t)inner * sizeof(int32_t));
        }
    }
}
