/* NEON path of DEPTHWISE_CONV_2D with depth multiplier 1 (aarch64): 16 channels at a time held in four int32x4
 * accumulators over all taps of an output pixel.  (x + in_offset) fits int16 ([-255, 255]); smlal / smlal2
 * multiply it by the int16 weights and add to int32 lanes, exactly as the portable body's int32 sums, so the
 * bytes are the portable path's; the output stage is requant.h's NEON requantization.  Channels past the last
 * full 16 go through the scalar sum and the NEON row requantization.  Other depth multipliers stay on the
 * portable body (em_dwconv_neon returns 0). */
#include "requant.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef EM_HAVE_NEON

static void dw_neon_dm1(const em_dwconv_args *a) {
    const int C = a->out_c, C16 = C & ~15;
    const int ocp = (C + 15) & ~15;
    const int rows = a->batch * a->out_h;
    const int16x8_t off = vdupq_n_s16((int16_t)a->in_offset);
#pragma omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)
    for (int r = 0; r < rows; r++) {
        const int b = r / a->out_h, oy = r % a->out_h;
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        int32_t *acc = a->scratch + (size_t)tid * ocp; /* the channel tail's scalar sums */
        for (int ox = 0; ox < a->out_w; ox++) {
            int8_t *out = a->out + (((size_t)b * a->out_h + oy) * a->out_w + ox) * C;
            for (int c = 0; c < C16; c += 16) {
                int32x4_t s0 = vld1q_s32(a->bias + c), s1 = vld1q_s32(a->bias + c + 4);
                int32x4_t s2 = vld1q_s32(a->bias + c + 8), s3 = vld1q_s32(a->bias + c + 12);
                for (int kh = 0; kh < a->k_h; kh++) {
                    const int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
                    if (iy < 0 || iy >= a->in_h) continue;
                    for (int kw = 0; kw < a->k_w; kw++) {
                        const int ix = ox * a->stride_w - a->pad_left + kw * a->dil_w;
                        if (ix < 0 || ix >= a->in_w) continue;
                        const int8x16_t x = vld1q_s8(a->in + (((size_t)b * a->in_h + iy) * a->in_w + ix) * C + c);
                        const int16_t *w = a->w + ((size_t)kh * a->k_w + kw) * C + c;
                        const int16x8_t x0 = vaddq_s16(vmovl_s8(vget_low_s8(x)), off);
                        const int16x8_t x1 = vaddq_s16(vmovl_high_s8(x), off);
                        const int16x8_t w0 = vld1q_s16(w), w1 = vld1q_s16(w + 8);
                        s0 = vmlal_s16(s0, vget_low_s16(x0), vget_low_s16(w0));
                        s1 = vmlal_high_s16(s1, x0, w0);
                        s2 = vmlal_s16(s2, vget_low_s16(x1), vget_low_s16(w1));
                        s3 = vmlal_high_s16(s3, x1, w1);
                    }
                }
                em_requant16_neon(s0, s1, s2, s3, &a->rq, c, 16, out + c);
            }
            if (C16 < C) {
                for (int c = C16; c < C; c++) acc[c] = a->bias[c];
                for (int kh = 0; kh < a->k_h; kh++) {
                    const int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
                    if (iy < 0 || iy >= a->in_h) continue;
                    for (int kw = 0; kw < a->k_w; kw++) {
                        const int ix = ox * a->stride_w - a->pad_left + kw * a->dil_w;
                        if (ix < 0 || ix >= a->in_w) continue;
                        const int8_t *px = a->in + (((size_t)b * a->in_h + iy) * a->in_w + ix) * C;
                        const int16_t *w = a->w + ((size_t)kh * a->k_w + kw) * C;
                        for (int c = C16; c < C; c++) acc[c] += (int32_t)(px[c] + a->in_offset) * w[c];
                    }
                }
                em_requant_row_neon(acc + C16, C - C16, &a->rq, C16, out + C16);
            }
        }
    }
}

int em_dwconv_neon(const em_dwconv_args *a) {
    if (em_isa_get() < EM_ISA_NEON || a->depth_mult != 1) return 0;
    dw_neon_dm1(a);
    return 1;
}

#endif
