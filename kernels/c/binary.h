/* 5-D broadcast iteration for element-wise binary ops.  Internal. */
#ifndef EDGE_MAAS_BINARY_H
#define EDGE_MAAS_BINARY_H
#include "em_kernels.h"

/* Runs BODY once per inner row: p1, p2 point at the row's first operands
 * (inner strides a->s1[4], a->s2[4]), `o` is the row's first output index and
 * the row has a->dims[4] elements. */
#define EM_BINARY_ROWS(a, BODY)                                                                  \
    do {                                                                                         \
        size_t o = 0;                                                                            \
        for (int i0 = 0; i0 < (a)->dims[0]; i0++)                                                \
            for (int i1 = 0; i1 < (a)->dims[1]; i1++)                                            \
                for (int i2 = 0; i2 < (a)->dims[2]; i2++)                                        \
                    for (int i3 = 0; i3 < (a)->dims[3]; i3++, o += (a)->dims[4]) {               \
                        const int8_t *p1 = (a)->in1 + (long)i0 * (a)->s1[0] + (long)i1 * (a)->s1[1] + \
                                           (long)i2 * (a)->s1[2] + (long)i3 * (a)->s1[3];        \
                        const int8_t *p2 = (a)->in2 + (long)i0 * (a)->s2[0] + (long)i1 * (a)->s2[1] + \
                                           (long)i2 * (a)->s2[2] + (long)i3 * (a)->s2[3];        \
                        BODY                                                                     \
                    }                                                                            \
    } while (0)

#endif
