/* QUANTIZE float -> int8 and DEQUANTIZE int8 -> float, rounded exactly as the
 * interpreter's optimized kernels: blocks of 8 lanes (quantize: x * (1/scale)
 * in float, ties to even; dequantize: q*s - zp*s in float) and a scalar tail
 * of n % 8 elements (quantize: round(double x / double scale), ties away;
 * dequantize: double(s) * (q - zp)).  Built with -ffp-contract=off. */
#include <math.h>
#include "em_kernels.h"

void em_quantize_f32(const void *args) {
    const em_quant_args *a = (const em_quant_args *)args;
    const float *x = (const float *)a->in;
    int8_t *out = (int8_t *)a->out;
    const size_t blocked = a->n - a->n % 8;
    const float inv = 1.0f / a->scale;
    const double dscale = a->scale;
    for (size_t i = 0; i < a->n; i++) {
        double v = i < blocked ? nearbyint((double)(x[i] * inv)) : round((double)x[i] / dscale);
        v += a->zero_point;
        out[i] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
}

void em_dequantize_s8(const void *args) {
    const em_quant_args *a = (const em_quant_args *)args;
    const int8_t *q = (const int8_t *)a->in;
    float *out = (float *)a->out;
    const size_t blocked = a->n - a->n % 8;
    const float zs = (float)a->zero_point * a->scale;
    const double dscale = a->scale;
    for (size_t i = 0; i < blocked; i++) out[i] = (float)q[i] * a->scale - zs;
    for (size_t i = blocked; i < a->n; i++) out[i] = (float)(dscale * (q[i] - a->zero_point));
}
