/* 256-entry tables of int8 ops that the interpreter runs as float lookup tables (TANH, GELU, ELU, EXP), built
 * exactly as its Prepare builds them: tflite/kernels/internal/common.h LUTPopulateInt8 with the op's float
 * transform from activations.cc / reference/gelu.h, in float32, with libm's float functions (the interpreter's
 * std::tanh(float) etc. call the same glibc tanhf / erfcf / expm1f / expf at run time).  Built with
 * -ffp-contract=off, so each float operation rounds once, as on x86-64 (measured: the interpreter's tables
 * are the unfused expressions; tests/test_op_tanh.py, tests/test_op_gelu.py).
 *
 * The one step of LUTPopulateInt8 whose result C leaves open is `static_cast<int32_t>(rescaled + zp)` for a
 * float outside int32 or NaN (a tiny output scale: 1 / scale overflows, or 0 * inf): x86's cvttss2si would
 * give INT32_MIN, aarch64's fcvtzs saturates.  Measured with the x86 interpreter (ai-edge-litert 2.3.0, TANH
 * and GELU at output scales 1e-12, 1e-38, 1e-40, 1e-45): it saturates (large positive values give 127) and
 * NaN gives 0, so that rule is written out here and every CPU builds the same table. */
#include <math.h>
#include "em_kernels.h"

/* (int32_t)f as the interpreter's build converts it: saturating, NaN -> 0 (measured, see above). */
static int32_t saturating_float_to_int32(float f) {
    if (f != f) return 0;
    if (f >= 2147483648.0f) return INT32_MAX;
    if (f < -2147483648.0f) return INT32_MIN;
    return (int32_t)f;
}

/* TfLiteRound(float): std::round, half away from zero. */
static void populate(float in_scale, int32_t in_zp, float out_scale, int32_t out_zp, float (*transform)(float),
                     int8_t *table) {
    const float inverse_scale = 1 / out_scale;
    for (int32_t val = -128; val <= 127; val++) {
        const float dequantized = in_scale * (float)(val - in_zp);
        const float transformed = transform(dequantized);
        const float rescaled = roundf(transformed * inverse_scale);
        const int32_t q = saturating_float_to_int32(rescaled + (float)out_zp);
        table[(uint8_t)(int8_t)val] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
    }
}

/* activations.cc TanhPrepare: [](float value) { return std::tanh(value); } */
static float tanh_transform(float x) { return tanhf(x); }

/* reference/gelu.h GeluTransform: 0.5f * in * std::erfc(in * static_cast<float>(-M_SQRT1_2)) */
static float gelu_transform(float x) { return 0.5f * x * erfcf(x * (float)-0.70710678118654752440); }

/* reference/gelu.h GeluTransformApproximate; kSqrt2dPi = M_2_SQRTPI * M_SQRT1_2 as a constexpr float (the
 * double product rounded once) and the cube as ((0.044715f * in) * in) * in, left to right. */
static float gelu_approx_transform(float x) {
    const float sqrt_2_over_pi = (float)(1.12837916709551257390 * 0.70710678118654752440);
    return 0.5f * x * (1.f + tanhf(sqrt_2_over_pi * (x + 0.044715f * x * x * x)));
}

/* activations.cc EluPrepare: [](float value) { return value < 0.0f ? std::expm1(value) : value; } */
static float elu_transform(float x) { return x < 0.0f ? expm1f(x) : x; }

/* exp.cc Prepare: [](float value) { return std::exp(value); }; large inputs give inf -> 127 (saturating) */
static float exp_transform(float x) { return expf(x); }

void em_float_lut_table(int kind, float in_scale, int32_t in_zp, float out_scale, int32_t out_zp, int8_t *table) {
    float (*fn)(float) = kind == EM_LUT_GELU ? gelu_transform
                       : kind == EM_LUT_GELU_APPROX ? gelu_approx_transform
                       : kind == EM_LUT_ELU ? elu_transform
                       : kind == EM_LUT_EXP ? exp_transform : tanh_transform;
    populate(in_scale, in_zp, out_scale, out_zp, fn, table);
}
