/* Argument blocks and entry points of the native int8 kernels.
 *
 * Every kernel has the shape `void em_<op>(const em_<op>_args *)` so the
 * executor can run a whole graph as one C loop over (function, args) pairs
 * without touching Python.  Shapes are NHWC; "offset" fields already hold the
 * negated zero point, as in TFLite's params structs. */
#ifndef EDGE_MAAS_KERNELS_H
#define EDGE_MAAS_KERNELS_H

#include <stdint.h>
#include <stddef.h>

typedef void (*em_kernel_fn)(const void *args);

/* ---- instruction-set dispatch (isa.c) ---- */
enum { EM_ISA_PORTABLE = 0, EM_ISA_AVX2 = 1 };
int em_isa_best(void);        /* best this CPU and build support */
int em_isa_get(void);
int em_isa_set(int isa);      /* clamps to em_isa_best(); returns what is in effect */

/* ---- requantization of an int32 row (requant.h) ----
 * out[i] = clamp(MultiplyByQuantizedMultiplier(acc[i], mult[i], shift[i]) + zp).
 * The final rounding right shift differs between the interpreter's kernels:
 * TFLite's own (depthwise, ...) round ties away from zero; ruy's GEMM output
 * stage (conv, fully connected) rounds ties up, toward +infinity. */
enum { EM_ROUND_AWAY = 0, EM_ROUND_UP = 1 };
typedef struct {
    const int32_t *mult, *shift; /* per channel, padded to a multiple of 16 */
    int32_t zp, act_min, act_max;
    int32_t rounding;            /* EM_ROUND_AWAY or EM_ROUND_UP */
} em_requant;

/* ---- GEMM core shared by conv and fully connected (gemm.c) ----
 * A: M x Kp int16 rows (input minus its zero point, zero-padded to even Kp).
 * W: packed [ceil(N/16)][Kp/2][16][2] int16, see em_pack_weights. */
#define EM_NR 16
typedef struct {
    int M, N, Kp;
    const int16_t *a;
    const int16_t *w;
    const int32_t *bias;   /* padded to a multiple of 16 */
    em_requant rq;
    int8_t *out;
    int ldo;               /* output row stride in elements */
} em_gemm_args;
void em_gemm(const em_gemm_args *g, int m0, int m1);
size_t em_packed_weights_len(int N, int K);
void em_pack_weights(const int8_t *w, int N, int K, int16_t *packed);

/* ---- CONV_2D (conv.c) ---- */
typedef struct {
    const int8_t *in; int8_t *out;
    int batch, in_h, in_w, in_c, out_h, out_w, out_c;
    int k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    int32_t in_offset;
    const int16_t *w; const int32_t *bias; em_requant rq;
    int16_t *scratch;      /* im2col rows: batch*out_h*out_w x Kp int16 */
    int threads;
} em_conv_args;
void em_conv2d(const void *args);
int em_conv_kp(int k_h, int k_w, int in_c);

/* ---- DEPTHWISE_CONV_2D (depthwise_conv.c) ---- */
typedef struct {
    const int8_t *in; int8_t *out;
    int batch, in_h, in_w, in_c, out_h, out_w, out_c, depth_mult;
    int k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    int32_t in_offset;
    const int16_t *w;      /* [k_h][k_w][out_c] */
    const int32_t *bias; em_requant rq;
    int32_t *scratch;      /* threads x out_c padded accumulators */
    int threads;
} em_dwconv_args;
void em_depthwise_conv2d(const void *args);

/* ---- FULLY_CONNECTED (fully_connected.c) ---- */
typedef struct {
    const int8_t *in; int8_t *out;
    int rows, in_features, units;
    int32_t in_offset;
    const int16_t *w; const int32_t *bias; em_requant rq;
    int16_t *scratch;      /* rows x Kp */
    int threads;
} em_fc_args;
void em_fully_connected(const void *args);

#endif
