/* MEAN (int8) over a contiguous run of axes: int32 sums, then the shared
 * requantization row (per-channel rounding split as the interpreter's kernel). */
#include <string.h>
#include "requant.h"

void em_mean(const void *args) {
    const em_mean_args *a = (const em_mean_args *)args;
    int32_t *acc = a->scratch;
    for (int o = 0; o < a->outer; o++) {
        for (int c = 0; c < a->inner; c++) acc[c] = a->pre_offset;
        const int8_t *x = a->in + (size_t)o * a->count * a->inner;
        for (int n = 0; n < a->count; n++, x += a->inner)
            for (int c = 0; c < a->inner; c++) acc[c] += x[c];
        em_requant_row_portable(acc, a->inner, &a->rq, 0, a->out + (size_t)o * a->inner);
    }
}
