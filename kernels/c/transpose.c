/* TRANSPOSE of 1-byte elements: a gather into a contiguous output.  The output
 * is walked in order (dims, up to 5-D after merging axes that stay adjacent);
 * in_strides[k] is the input stride (elements) of the axis that becomes output
 * axis k.  Pure data movement, so every instruction set gives the same bytes. */
#include <string.h>
#include "em_kernels.h"

void em_transpose(const void *args) {
    const em_transpose_args *a = (const em_transpose_args *)args;
    const int8_t *in = a->in;
    int8_t *out = a->out;
    const long s0 = a->in_strides[0], s1 = a->in_strides[1], s2 = a->in_strides[2];
    const long s3 = a->in_strides[3], s4 = a->in_strides[4];
    const int n4 = a->dims[4];
    for (int i0 = 0; i0 < a->dims[0]; i0++)
        for (int i1 = 0; i1 < a->dims[1]; i1++)
            for (int i2 = 0; i2 < a->dims[2]; i2++)
                for (int i3 = 0; i3 < a->dims[3]; i3++) {
                    const int8_t *row = in + i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3;
                    if (s4 == 1) {
                        memcpy(out, row, (size_t)n4);
                    } else {
                        for (int i4 = 0; i4 < n4; i4++) out[i4] = row[i4 * s4];
                    }
                    out += n4;
                }
}
