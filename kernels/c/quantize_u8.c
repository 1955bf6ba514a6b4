/* QUANTIZE float -> uint8 and DEQUANTIZE uint8 -> float: the int8 kernels' arithmetic
 * (quantize.c: blocks of 8 in float, the n % 8 tail in double) on unsigned bytes,
 * which is what the interpreter's optimized kernels do for uint8 (measured: every
 * byte value and zero point, head and tail).  Built with -ffp-contract=off. */
#include <math.h>
#include "em_kernels.h"

void em_quantize_f32_u8(const void *args) {
    const em_quant_args *a = (const em_quant_args *)args;
    const float *x = (const float *)a->in;
    uint8_t *out = (uint8_t *)a->out;
    const size_t blocked = a->n - a->n % 8;
    const float inv = 1.0f / a->scale;
    const double dscale = a->scale;
    for (size_t i = 0; i < a->n; i++) {
        double v = i < blocked ? nearbyint((double)(x[i] * inv)) : round((double)x[i] / dscale);
        v += a->zero_point;
        out[i] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
}

void em_dequantize_u8(const void *args) {
    const em_quant_args *a = (const em_quant_args *)args;
    const uint8_t *q = (const uint8_t *)a->in;
    float *out = (float *)a->out;
    const size_t blocked = a->n - a->n % 8;
    const float zs = (float)a->zero_point * a->scale;
    const double dscale = a->scale;
    for (size_t i = 0; i < blocked; i++) out[i] = (float)q[i] * a->scale - zs;
    for (size_t i = blocked; i < a->n; i++) out[i] = (float)(dscale * ((int32_t)q[i] - a->zero_point));
}
