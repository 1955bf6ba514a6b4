/* Strided copy of a 5-D box: RESHAPE (one contiguous box), PAD (fill, then the
 * inner box), STRIDED_SLICE (negative or >1 strides) and CONCATENATION (one
 * box per input). */
#include <string.h>
#include "em_kernels.h"

void em_strided_copy(const void *args) {
    const em_copy_args *a = (const em_copy_args *)args;
    const int es = a->elem_size;
    if (a->fill_bytes) memset(a->out, a->fill, a->fill_bytes);
    const int inner_contig = a->in_strides[4] == 1 && a->out_strides[4] == 1;
    for (int i0 = 0; i0 < a->dims[0]; i0++)
        for (int i1 = 0; i1 < a->dims[1]; i1++)
            for (int i2 = 0; i2 < a->dims[2]; i2++)
                for (int i3 = 0; i3 < a->dims[3]; i3++) {
                    long si = a->in_start + i0 * a->in_strides[0] + i1 * a->in_strides[1] +
                              i2 * a->in_strides[2] + i3 * a->in_strides[3];
                    long so = a->out_start + i0 * a->out_strides[0] + i1 * a->out_strides[1] +
                              i2 * a->out_strides[2] + i3 * a->out_strides[3];
                    if (inner_contig) {
                        memcpy(a->out + so * es, a->in + si * es, (size_t)a->dims[4] * es);
                    } else {
                        for (int i4 = 0; i4 < a->dims[4]; i4++)
                            memcpy(a->out + (so + i4 * a->out_strides[4]) * es,
                                   a->in + (si + i4 * a->in_strides[4]) * es, (size_t)es);
                    }
                }
}
