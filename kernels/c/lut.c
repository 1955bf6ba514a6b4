/* A unary int8 op as a 256-entry table: exact for any int8 -> int8 function,
 * which is how the interpreter itself runs LOGISTIC and friends. */
#include <math.h>
#include "em_kernels.h"
#include "requant.h"

static void lut_portable(const int8_t *restrict in, int8_t *restrict out, size_t n, const int8_t *restrict t) {
    for (size_t i = 0; i < n; i++) out[i] = t[(uint8_t)in[i]];
}

#ifdef EM_HAVE_AVX2
/* 32 lookups per step with vpshufb, which indexes 16 bytes per lane and gives 0 where the index byte has its top
 * bit set (XNNPACK's x8-lut scheme).  Step j (0..15) looks up x - 16j in row j; steps 1-8 subtract with wrap-around,
 * steps 9-15 with signed saturation.  An input below 128 in table row r = x / 16 is then a valid index at steps
 * 0..r only (saturation keeps it negative afterwards); one of 128 or more at steps r - 7..r only.  Row j is stored
 * as T_j ^ T_(j-1) (^ row j - 8 from 8 on), so the XOR of the valid steps telescopes to T[x] in both cases
 * (checked for every byte by tests/test_op_activations.py's tables). */
static EM_AVX2 void lut_avx2(const int8_t *in, int8_t *out, size_t n, const int8_t *t) {
    __m256i row[16], prev = _mm256_setzero_si256();
    for (int j = 0; j < 16; j++) {
        const __m256i tj = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(t + 16 * j)));
        row[j] = _mm256_xor_si256(tj, prev);
        if (j >= 8) row[j] = _mm256_xor_si256(row[j], row[j - 8]);
        prev = tj;
    }
    const __m256i sixteen = _mm256_set1_epi8(16);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(in + i));
        __m256i y = _mm256_shuffle_epi8(row[0], x);
        for (int j = 1; j <= 8; j++) {
            x = _mm256_sub_epi8(x, sixteen);
            y = _mm256_xor_si256(y, _mm256_shuffle_epi8(row[j], x));
        }
        for (int j = 9; j < 16; j++) {
            x = _mm256_subs_epi8(x, sixteen);
            y = _mm256_xor_si256(y, _mm256_shuffle_epi8(row[j], x));
        }
        _mm256_storeu_si256((__m256i *)(out + i), y);
    }
    lut_portable(in + i, out + i, n - i, t);
}
#endif

static void lut_run(const int8_t *in, int8_t *out, size_t n, const int8_t *t) {
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2) {
        lut_avx2(in, out, n, t);
        return;
    }
#endif
    lut_portable(in, out, n, t);
}

void em_lut(const void *args) {
    const em_lut_args *a = (const em_lut_args *)args;
    const size_t split = a->split < a->n ? a->split : a->n;
    lut_run(a->in, a->out, split, a->table);
    lut_run(a->in + split, a->out + split, a->n - split, a->tail_table);
}

/* LOGISTIC's table as the interpreter populates it, in float with libm's expf:
 * dequantize, 1 / (1 + exp(-x)), multiply by 1/out_scale, round half away. */
void em_logistic_table(float in_scale, int32_t in_zp, float out_scale, int32_t out_zp, int8_t *table) {
    const float inverse_scale = 1 / out_scale;
    for (int32_t val = -128; val <= 127; val++) {
        const float dequantized = in_scale * (float)(val - in_zp);
        const float transformed = 1.0f / (1.0f + expf(-dequantized));
        const float rescaled = roundf(transformed * inverse_scale);
        int32_t q = (int32_t)(rescaled + (float)out_zp);
        table[(uint8_t)(int8_t)val] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
    }
}
