/* GATHER along one axis with constant positions: input viewed as [outer][axis][inner], output [outer][n][inner],
 * out[o][i][:] = in[o][pos[i]][:] (bytes as stored; the lowering checked every position).  One pass in output
 * order: a byte per position when inner == 1 (channel selection), else a memcpy of the inner run. */
#include <string.h>
#include "em_kernels.h"

void em_gather(const void *args) {
    const em_gather_args *a = (const em_gather_args *)args;
    const size_t inner = (size_t)a->inner * a->elem_size, in_block = (size_t)a->axis_size * inner;
    const uint8_t *in = (const uint8_t *)a->in;
    uint8_t *out = (uint8_t *)a->out;
    for (long o = 0; o < a->outer; o++, in += in_block) {
        if (inner == 1) {
            for (int i = 0; i < a->n; i++) out[i] = in[a->pos[i]];
            out += a->n;
        } else {
            for (int i = 0; i < a->n; i++, out += inner) memcpy(out, in + (size_t)a->pos[i] * inner, inner);
        }
    }
}
