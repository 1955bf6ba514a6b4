/* MAXIMUM and MINIMUM on int8 with broadcasting: the interpreter compares the raw
 * int8 values (no rescaling; converters give inputs and output one quantization).
 * (No commas outside parentheses in the row body: it is a macro argument.) */
#include "binary.h"

void em_maximum(const void *args) {
    const em_binary_args *a = (const em_binary_args *)args;
    const int n = a->dims[4], t1 = a->s1[4], t2 = a->s2[4];
    EM_BINARY_ROWS(a, {
        int8_t *out = a->out + o;
        for (int i = 0; i < n; i++) {
            const int8_t x = p1[i * t1];
            const int8_t y = p2[i * t2];
            out[i] = x > y ? x : y;
        }
    });
}

void em_minimum(const void *args) {
    const em_binary_args *a = (const em_binary_args *)args;
    const int n = a->dims[4], t1 = a->s1[4], t2 = a->s2[4];
    EM_BINARY_ROWS(a, {
        int8_t *out = a->out + o;
        for (int i = 0; i < n; i++) {
            const int8_t x = p1[i * t1];
            const int8_t y = p2[i * t2];
            out[i] = x < y ? x : y;
        }
    });
}
