/* MAXIMUM and MINIMUM on int8 with broadcasting: the interpreter compares the raw
 * int8 values (no rescaling; converters give inputs and output one quantization).
 * One body, instantiated per comparison; contiguous rows get a plain loop that the
 * compiler vectorizes. */
#include "binary.h"

#define EM_MINMAX_KERNEL(NAME, CMP)                                                          \
    void NAME(const void *args) {                                                            \
        const em_binary_args *a = (const em_binary_args *)args;                              \
        const int n = a->dims[4], t1 = a->s1[4], t2 = a->s2[4];                              \
        EM_BINARY_ROWS(a, {                                                                  \
            int8_t *out = a->out + o;                                                        \
            if (t1 == 1 && t2 == 1) {                                                        \
                for (int i = 0; i < n; i++) out[i] = p1[i] CMP p2[i] ? p1[i] : p2[i];        \
            } else {                                                                         \
                for (int i = 0; i < n; i++) {                                                \
                    const int8_t x = p1[(long)i * t1];                                       \
                    const int8_t y = p2[(long)i * t2];                                       \
                    out[i] = x CMP y ? x : y;                                                \
                }                                                                            \
            }                                                                                \
        });                                                                                  \
    }

EM_MINMAX_KERNEL(em_maximum, >)
EM_MINMAX_KERNEL(em_minimum, <)
