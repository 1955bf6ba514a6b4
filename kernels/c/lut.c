/* A unary int8 op as a 256-entry table: exact for any int8 -> int8 function,
 * which is how the interpreter itself runs LOGISTIC and friends. */
#include "em_kernels.h"

void em_lut(const void *args) {
    const em_lut_args *a = (const em_lut_args *)args;
    for (size_t i = 0; i < a->n; i++) a->out[i] = a->table[(uint8_t)a->in[i]];
}
