/* BATCH_MATMUL on int8 (attention scores and values, transformer / conformer blocks): the interpreter registers
 * only its reference kernel (Register_BATCH_MATMUL returns the _REF one; reference_ops::BatchMatMul, called with
 * the operands swapped), so every output is
 *     out[b, a, c] = clamp(MBQM(sum_k (lhs[b, a, k] - lhs_zp) * (rhs[b, k, c] - rhs_zp), m, s) + out_zp)
 * with an int32 sum and scalar MultiplyByQuantizedMultiplier (ties away from zero) everywhere: no block / tail
 * split.  Batch axes broadcast (stride 0); adj_x / adj_y only change the strides.  Per batch both operands are
 * widened once to int16 with their offsets added, the lhs as [rows][depth] and the rhs transposed to [cols][depth]
 * (skipped when a broadcast batch repeats the previous operand), so every output is a dot product of two
 * contiguous int16 rows, which compilers vectorize (pmaddwd / smlal) on every ISA.  Integer sums: exact in any
 * order, so every path gives the same bytes. */
#include "em_kernels.h"
#include "fixedpoint.h"

static void widen(const int8_t *src, long rs, long ks, int rows, int depth, int32_t off, int16_t *dst) {
    for (int i = 0; i < rows; i++, dst += depth) {
        const int8_t *p = src + (long)i * rs;
        if (ks == 1) {
            for (int k = 0; k < depth; k++) dst[k] = (int16_t)(p[k] + off);
        } else {
            for (int k = 0; k < depth; k++) dst[k] = (int16_t)(p[(long)k * ks] + off);
        }
    }
}

static inline int32_t dot16(const int16_t *a, const int16_t *b, int n) {
    int32_t s = 0;
    for (int k = 0; k < n; k++) s += (int32_t)a[k] * b[k];
    return s;
}

void em_batch_matmul(const void *args) {
    const em_batch_matmul_args *a = (const em_batch_matmul_args *)args;
    const int A = a->rows, C = a->cols, K = a->depth;
    int16_t *lw = a->scratch, *rw = a->scratch + (size_t)A * K;
    const int8_t *last_l = 0, *last_r = 0;
    int8_t *out = a->out;
    for (int b0 = 0; b0 < a->batch[0]; b0++)
        for (int b1 = 0; b1 < a->batch[1]; b1++)
            for (int b2 = 0; b2 < a->batch[2]; b2++) {
                const int8_t *lhs = a->lhs + b0 * a->lhs_bs[0] + b1 * a->lhs_bs[1] + b2 * a->lhs_bs[2];
                const int8_t *rhs = a->rhs + b0 * a->rhs_bs[0] + b1 * a->rhs_bs[1] + b2 * a->rhs_bs[2];
                if (lhs != last_l) widen(lhs, a->lhs_rs, a->lhs_ks, A, K, a->lhs_offset, lw);
                if (rhs != last_r) widen(rhs, a->rhs_cs, a->rhs_ks, C, K, a->rhs_offset, rw); /* [C][K] */
                last_l = lhs;
                last_r = rhs;
                for (int i = 0; i < A; i++, out += C) {
                    const int16_t *row = lw + (size_t)i * K;
                    for (int c = 0; c < C; c++) {
                        const int32_t acc = dot16(row, rw + (size_t)c * K, K);
                        out[c] = em_clamp_i8(em_multiply_by_quantized_multiplier(acc, a->mult, a->shift) + a->out_zp,
                                             -128, 127);
                    }
                }
            }
}
