/* RESIZE_BILINEAR on int8 (NHWC) as the interpreter computes it: its optimized kernel forwards int8 to
 * reference_ops::ResizeBilinearInteger (tflite/kernels/internal/reference/resize_bilinear.h).  Source
 * coordinates are 10-bit fixed point; per output row / column the lowering precomputes the two source indices and
 * the fraction d (scaled - 1024 * lower, in [-512, 1023]: negative at the first rows with half-pixel centers) as
 * ComputeInterpolationValuesInteger does (kernels/ref/resize_bilinear.py).  Each output is
 *     s = v00 (1024 - dy)(1024 - dx) + v10 dy (1024 - dx) + v01 (1024 - dy) dx + v11 dy dx
 *     out = (s + (s > 0 ? 2^19 : -2^19)) / 2^20   (C division: half away from zero; the interpreter's build has
 *                                                  no TFLITE_SINGLE_ROUNDING, measured on negative ties)
 * The interpreter sums in int64; int32 is exact here: each weight factor is at most 1536 in magnitude and the two
 * of an axis sum to at most 2048 in magnitude, so |s| <= 128 * 2048^2 = 2^29. */
#include "em_kernels.h"

void em_resize_bilinear(const void *args) {
    const em_resize_bilinear_args *a = (const em_resize_bilinear_args *)args;
    const int C = a->channels, oh = a->out_h, ow = a->out_w;
    const int32_t *y0 = a->ymap, *y1 = a->ymap + oh, *dy = a->ymap + 2 * oh;
    const int32_t *x0 = a->xmap, *x1 = a->xmap + ow, *dx = a->xmap + 2 * ow;
    const size_t in_row = (size_t)a->in_w * C;
    int8_t *out = a->out;
    for (int b = 0; b < a->batch; b++) {
        const int8_t *img = a->in + (size_t)b * a->in_h * in_row;
        for (int y = 0; y < oh; y++) {
            const int8_t *r0 = img + (size_t)y0[y] * in_row, *r1 = img + (size_t)y1[y] * in_row;
            const int32_t wy1 = dy[y], wy0 = 1024 - wy1;
            for (int x = 0; x < ow; x++, out += C) {
                const int32_t wx1 = dx[x], wx0 = 1024 - wx1;
                const int32_t w00 = wy0 * wx0, w10 = wy1 * wx0, w01 = wy0 * wx1, w11 = wy1 * wx1;
                const int8_t *p00 = r0 + (size_t)x0[x] * C, *p01 = r0 + (size_t)x1[x] * C;
                const int8_t *p10 = r1 + (size_t)x0[x] * C, *p11 = r1 + (size_t)x1[x] * C;
                for (int c = 0; c < C; c++) {
                    const int32_t s = p00[c] * w00 + p10[c] * w10 + p01[c] * w01 + p11[c] * w11;
                    out[c] = (int8_t)((s + (s > 0 ? (1 << 19) : -(1 << 19))) / (1 << 20));
                }
            }
        }
    }
}
