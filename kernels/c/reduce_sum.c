/* SUM on int8 as the interpreter's optimized QuantizedMeanOrSum with compute_sum (reduce.cc registers the
 * generic optimized SUM): int32 sums of the stored values over the reduced axes, then in float32
 *     scale = in_scale / out_scale;  bias = -in_zp * scale * count
 *     out = clamp((int32)roundf(sum * scale + bias) + out_zp)
 * each operation rounded once (-ffp-contract=off; measured to match the x86 interpreter), roundf half away from
 * zero as TfLiteRound.  The input is folded in order into out-sized int32 accumulators (the 5-D box and output
 * strides of em_reduce_args, 0 on reduced axes), as REDUCE_MAX. */
#include <math.h>
#include "em_kernels.h"

void em_reduce_sum(const void *args) {
    const em_reduce_sum_args *a = (const em_reduce_sum_args *)args;
    int32_t *acc = a->scratch;
    const long n_out = a->r.out_size;
    for (long i = 0; i < n_out; i++) acc[i] = 0;
    const int8_t *x = a->r.in;
    const int d[5] = {a->r.dims[0], a->r.dims[1], a->r.dims[2], a->r.dims[3], a->r.dims[4]}; /* locals: the int32 */
    const long s[5] = {a->r.out_strides[0], a->r.out_strides[1], a->r.out_strides[2], a->r.out_strides[3],
                       a->r.out_strides[4]};                                      /* stores may alias *a's ints */
    for (int i0 = 0; i0 < d[0]; i0++)
        for (int i1 = 0; i1 < d[1]; i1++)
            for (int i2 = 0; i2 < d[2]; i2++)
                for (int i3 = 0; i3 < d[3]; i3++, x += d[4]) {
                    int32_t *y = acc + i0 * s[0] + i1 * s[1] + i2 * s[2] + i3 * s[3];
                    if (s[4] == 0) {
                        int32_t t = 0;
                        for (int j = 0; j < d[4]; j++) t += x[j];
                        *y += t;
                    } else {
                        for (int j = 0; j < d[4]; j++) y[j] += x[j];
                    }
                }
    const float scale = a->in_scale / a->out_scale;
    const float bias = (float)(-a->in_zp) * scale * (float)a->count;
    int8_t *out = a->r.out;
    const int32_t zp = a->out_zp;
    for (long i = 0; i < n_out; i++) {
        const float r = roundf((float)acc[i] * scale + bias);
        /* outside int32: saturate, as the interpreter's build converts (see lut_float.c) */
        const int64_t q = (int64_t)(r >= 2147483648.0f ? INT32_MAX : r < -2147483648.0f ? INT32_MIN : (int32_t)r) + zp;
        out[i] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
    }
}
