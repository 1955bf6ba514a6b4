/* REDUCE_MAX / REDUCE_MIN on int8: the stored values compared (reduce.cc requires the input and output to share
 * one quantization, so the raw maximum is the real one).  The input is read once in order, a 5-D box (axes merged
 * by the lowering), each value folded into the output position out_strides selects (0 on reduced axes); the
 * output starts at -128 (max) or 127 (min), the identity, as the interpreter's init value (numeric lowest / max). */
#include "em_kernels.h"

void em_reduce_max(const void *args) {
    const em_reduce_args *a = (const em_reduce_args *)args;
    const int is_max = a->is_max;
    const int8_t init = is_max ? -128 : 127;
    for (long i = 0; i < a->out_size; i++) a->out[i] = init;
    const int8_t *x = a->in;
    const int *d = a->dims;
    const long *s = a->out_strides;
    for (int i0 = 0; i0 < d[0]; i0++)
        for (int i1 = 0; i1 < d[1]; i1++)
            for (int i2 = 0; i2 < d[2]; i2++)
                for (int i3 = 0; i3 < d[3]; i3++, x += d[4]) {
                    int8_t *y = a->out + i0 * s[0] + i1 * s[1] + i2 * s[2] + i3 * s[3];
                    if (s[4] == 0) { /* the inner axis is reduced: one output for the row */
                        int8_t m = *y;
                        for (int j = 0; j < d[4]; j++) m = is_max ? (x[j] > m ? x[j] : m) : (x[j] < m ? x[j] : m);
                        *y = m;
                    } else if (is_max) {
                        for (int j = 0; j < d[4]; j++) y[j] = x[j] > y[j] ? x[j] : y[j];
                    } else {
                        for (int j = 0; j < d[4]; j++) y[j] = x[j] < y[j] ? x[j] : y[j];
                    }
                }
}
