/* int32 accumulators (bias included) -> int8, per output channel: the output stage of
 * CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED on its own, for accumulators computed
 * elsewhere (the accelerator backend).  Same rounding rules as the fused kernels. */
#include "em_kernels.h"
#include "requant.h"

void em_requantize_rows(const void *args) {
    const em_requant_rows_args *a = (const em_requant_rows_args *)args;
    for (long r = 0; r < a->rows; r++)
        em_requant_row_portable(a->acc + (size_t)r * a->channels, a->channels, &a->rq, 0,
                                a->out + (size_t)r * a->channels);
}
