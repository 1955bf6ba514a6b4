/* int32 accumulators (bias included) -> int8, per output channel: the output stage of
 * CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED on its own, for accumulators computed
 * elsewhere (the accelerator backend).  Same rounding rules as the fused kernels, and
 * the same rows: requant.h's portable, AVX2 or NEON one (the multiplier and shift arrays
 * are padded to 16, as the rows want). */
#include "em_kernels.h"
#include "requant.h"

void em_requantize_rows(const void *args) {
    const em_requant_rows_args *a = (const em_requant_rows_args *)args;
    void (*row)(const int32_t *, int, const em_requant *, int, int8_t *) = em_requant_row_portable;
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2) row = em_requant_row_avx2;
#endif
#ifdef EM_HAVE_NEON
    if (em_isa_get() >= EM_ISA_NEON) row = em_requant_row_neon;
#endif
    for (long r = 0; r < a->rows; r++)
        row(a->acc + (size_t)r * a->channels, a->channels, &a->rq, 0, a->out + (size_t)r * a->channels);
}
