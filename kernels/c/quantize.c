/* QUANTIZE float -> int8 / uint8 and DEQUANTIZE int8 / uint8 -> float, rounded exactly as
 * the interpreter's optimized kernels: blocks of 8 lanes (quantize: x * (1/scale) in float,
 * ties to even; dequantize: q*s - zp*s in float) and a scalar tail of n % 8 elements
 * (quantize: round(double x / double scale), ties away; dequantize: double(s) * (q - zp)).
 * uint8 is the same arithmetic on unsigned bytes, which is what the interpreter's optimized
 * kernels do for it (measured: every byte value and zero point, head and tail): one body,
 * instantiated per type.  Built with -ffp-contract=off. */
#include <math.h>
#include "em_kernels.h"

#define EM_QUANTIZE_KERNELS(QUANTIZE, DEQUANTIZE, QT, QMIN, QMAX)                                       \
    void QUANTIZE(const void *args) {                                                                   \
        const em_quant_args *a = (const em_quant_args *)args;                                           \
        const float *x = (const float *)a->in;                                                          \
        QT *out = (QT *)a->out;                                                                         \
        const size_t blocked = a->n - a->n % 8;                                                         \
        const float inv = 1.0f / a->scale;                                                              \
        const double dscale = a->scale;                                                                 \
        for (size_t i = 0; i < a->n; i++) {                                                             \
            double v = i < blocked ? nearbyint((double)(x[i] * inv)) : round((double)x[i] / dscale);    \
            v += a->zero_point;                                                                         \
            out[i] = (QT)(v < QMIN ? QMIN : (v > QMAX ? QMAX : v));                                     \
        }                                                                                               \
    }                                                                                                   \
                                                                                                        \
    void DEQUANTIZE(const void *args) {                                                                 \
        const em_quant_args *a = (const em_quant_args *)args;                                           \
        const QT *q = (const QT *)a->in;                                                                \
        float *out = (float *)a->out;                                                                   \
        const size_t blocked = a->n - a->n % 8;                                                         \
        const float zs = (float)a->zero_point * a->scale;                                               \
        const double dscale = a->scale;                                                                 \
        for (size_t i = 0; i < blocked; i++) out[i] = (float)q[i] * a->scale - zs;                      \
        for (size_t i = blocked; i < a->n; i++) out[i] = (float)(dscale * ((int32_t)q[i] - a->zero_point)); \
    }

EM_QUANTIZE_KERNELS(em_quantize_f32, em_dequantize_s8, int8_t, -128, 127)
EM_QUANTIZE_KERNELS(em_quantize_f32_u8, em_dequantize_u8, uint8_t, 0, 255)
