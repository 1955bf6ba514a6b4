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
/* Ordered by preference; a CPU need not have every path below the one it has
 * best (AVX-512 VNNI without AVX-VNNI), so "supported" is checked per path. */
enum { EM_ISA_PORTABLE = 0, EM_ISA_AVX2 = 1, EM_ISA_AVXVNNI = 2, EM_ISA_AVX512VNNI = 3,
       EM_ISA_NEON = 4, EM_ISA_DOTPROD = 5, EM_ISA_COUNT = 6 };
/* The x86 paths (AVX2..AVX512VNNI) and the aarch64 ones (NEON, DOTPROD) never meet on one CPU: x86 code tests
 * em_isa_get() >= EM_ISA_AVX2 only inside EM_HAVE_AVX2 (x86 builds), ARM code >= EM_ISA_NEON inside EM_HAVE_NEON. */
int em_isa_best(void);        /* best this CPU and build support */
int em_isa_get(void);
int em_isa_set(int isa);      /* the highest supported path <= isa (-1: best); returns what is in effect */
int em_isa_supported(int isa);
int em_isa_has_vnni(int isa); /* the int8 GEMM runs on vpdpbusd (gemm_vnni.c) */
#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define EM_HAVE_NEON 1        /* Advanced SIMD is part of the aarch64 baseline */
#endif
#if defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 12) || \
                            (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define EM_HAVE_AVXVNNI 1     /* target("avxvnni") and __builtin_cpu_supports("avxvnni") exist */
#endif

/* ---- requantization of an int32 row (requant.h) ----
 * out[c] = clamp(MultiplyByQuantizedMultiplier(acc[c], mult[c], shift[c]) + zp).
 * The final rounding right shift differs between the interpreter's kernels:
 * TFLite's scalar code rounds ties away from zero; ruy's GEMM output stage
 * (conv, fully connected) and the 8-lane blocks of the optimized depthwise
 * kernel round ties up, toward +infinity, while that kernel's n % 8 channel
 * tail is scalar again.  So: channels c < round_up_below round ties up, the
 * rest away from zero. */
typedef struct {
    const int32_t *mult, *shift; /* per channel, padded to a multiple of 16 */
    int32_t zp, act_min, act_max;
    int32_t round_up_below;
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
/* y[i] = x[i] + off as int16: the GEMM's operand widening (im2col, FC rows). */
void em_widen(const int8_t *x, int16_t *y, size_t n, int32_t off);
#ifdef EM_HAVE_NEON
void em_gemm_neon(const em_gemm_args *g, int m0, int m1);           /* gemm_neon.c */
void em_widen_neon(const int8_t *x, int16_t *y, size_t n, int32_t off);
#endif
size_t em_packed_weights_len(int N, int K);
void em_pack_weights(const int8_t *w, int N, int K, int16_t *packed);

/* ---- CONV_2D (conv.c) ---- */
#define EM_CONV_ROWS 64
typedef struct {
    const int8_t *in; int8_t *out;
    int batch, in_h, in_w, in_c, out_h, out_w, out_c;
    int k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    int32_t in_offset;
    const int16_t *w; const int32_t *bias; em_requant rq;
    int16_t *scratch;      /* em_conv_scratch_bytes(args): im2col rows (threads x EM_CONV_ROWS x Kp int16) or a
                            * padded image for the indirect VNNI GEMM */
    int threads;
} em_conv_args;
void em_conv2d(const void *args);
int em_conv_kp(int k_h, int k_w, int in_c);
/* Bytes of scratch the op needs on any path this CPU has (the geometry and threads fields of args are read). */
size_t em_conv_scratch_bytes(const em_conv_args *a);

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
    void *plan;            /* x86: em_dwconv_plan_init's block (NULL: the per-pixel paths) */
} em_dwconv_args;
void em_depthwise_conv2d(const void *args);
/* Bytes of the x86 plan for these arguments (weights, requantization constants and row buffers laid out for the
 * vector paths; see depthwise_x86.h), 0 where none is made (not x86, or too large); em_dwconv_plan_init fills
 * buf (that many bytes, zeroed, any alignment) from every other field of a and sets a->plan. */
size_t em_dwconv_plan_len(const em_dwconv_args *a);
void em_dwconv_plan_init(em_dwconv_args *a, void *buf);
#ifdef EM_HAVE_NEON
int em_dwconv_neon(const em_dwconv_args *a); /* depthwise_neon.c: 1 when it ran the op (neon path) */
#endif

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

/* ---- output stage alone, for accumulators computed elsewhere (requantize_rows.c) ---- */
typedef struct {
    const int32_t *acc; int8_t *out;
    long rows; int channels;
    em_requant rq;
} em_requant_rows_args;
void em_requantize_rows(const void *args);

/* ---- element-wise binary ops with broadcasting (add.c: ADD and SUB, mul.c) ----
 * Shapes are padded to 5-D; in1/in2 strides are in elements, 0 on broadcast
 * axes; the output is contiguous. */
typedef struct {
    const int8_t *in1, *in2; int8_t *out;
    int dims[5];
    int s1[5], s2[5];
    int32_t in1_offset, in2_offset, out_offset;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift, left_shift;
    int32_t act_min, act_max;
} em_binary_args;
void em_add(const void *args);
void em_mul(const void *args);

/* ---- SOFTMAX int8 -> int8 (softmax.c): the interpreter's float lookup-table
 * kernel; table[255 - v] = expf(-in_scale * beta * v), built by
 * em_softmax_table. */
typedef struct {
    const int8_t *in; int8_t *out;
    int outer, depth;
    const float *table;
    float out_scale;
    int32_t out_zp;
} em_softmax_args;
void em_softmax(const void *args);
void em_softmax_table(float in_scale, float beta, float *table);

/* ---- MEAN (mean.c): input viewed as [outer][count][inner], the reduced axes
 * being the middle, contiguous run.  out = requant(sum + pre_offset) with
 * rq.zp as the post offset. */
typedef struct {
    const int8_t *in; int8_t *out;
    int outer, count, inner;
    int32_t pre_offset;
    em_requant rq;
    int32_t *scratch;          /* inner int32 */
} em_mean_args;
void em_mean(const void *args);

/* ---- AVERAGE_POOL_2D, MAX_POOL_2D (pooling.c) ---- */
typedef struct {
    const int8_t *in; int8_t *out;
    int batch, in_h, in_w, channels, out_h, out_w;
    int k_h, k_w, stride_h, stride_w, pad_top, pad_left;
    int32_t act_min, act_max;
} em_pool_args;
void em_average_pool(const void *args);
void em_max_pool(const void *args);

/* ---- data movement (copy.c): RESHAPE, PAD, STRIDED_SLICE, CONCATENATION ----
 * A strided copy of a 5-D box: out (contiguous dims) <- in at in_start with
 * in_strides (elements, may be negative).  PAD fills then copies the inner box. */
typedef struct {
    const int8_t *in; int8_t *out;
    int dims[5];
    long in_strides[5];
    long out_strides[5];
    long in_start, out_start;
    size_t fill_bytes;          /* PAD: bytes of out set to fill first (0: none) */
    int8_t fill;
    int elem_size;              /* bytes per element (1 for int8, 4 for float) */
} em_copy_args;
void em_strided_copy(const void *args);

/* ---- 256-entry lookup tables (lut.c): any int8 -> int8 function ----
 * The interpreter's vectorized kernels handle whole blocks of lanes with one
 * rounding and the n % block tail with scalar code rounding differently, so
 * elements from `split` on use tail_table. */
typedef struct {
    const int8_t *in; int8_t *out;
    size_t n, split;
    const int8_t *table;        /* indexed by (uint8_t)input */
    const int8_t *tail_table;
} em_lut_args;
void em_lut(const void *args);
void em_logistic_table(float in_scale, int32_t in_zp, float out_scale, int32_t out_zp, int8_t *table);

/* ---- QUANTIZE float -> int8, DEQUANTIZE int8 -> float (quantize.c) ---- */
typedef struct {
    const void *in; void *out;
    size_t n;
    float scale;
    int32_t zero_point;
} em_quant_args;
void em_quantize_f32(const void *args);
void em_dequantize_s8(const void *args);

/* ---- VNNI GEMM paths for CONV_2D and FULLY_CONNECTED (gemm_vnni.c) ----
 * When the CPU has a VNNI path (or, on aarch64, the dot product), em_pack_weights appends int32 column sums
 * (padded to 16) and int8 panels [ceil(N/16)][K4/4][16][4] (K4: K rounded up
 * to 4) after the int16 panels, so one packed array serves every path.  These
 * run the whole op and return 1 when a VNNI path is in effect, else return 0
 * having done nothing (em_conv2d / em_fully_connected call them first). */
int em_conv2d_vnni(const em_conv_args *a);
int em_fully_connected_vnni(const em_fc_args *a);
size_t em_conv_vnni_image_bytes(const em_conv_args *a); /* the indirect conv's padded image; 0: none */
/* CONV_2D's weights [N][k_h][k_w][in_c]: em_pack_weights' array, and where the x86 VNNI paths are on the CPU
 * and a filter row (tap, with dil_w > 1) is not whole 4-byte groups, int8 panels with each run zero-padded to
 * 4-byte groups after it, for the indirect GEMM (gemm_vnni.c). */
size_t em_conv_packed_len(int N, int k_h, int k_w, int in_c, int dil_w);
void em_pack_conv_weights(const int8_t *w, int N, int k_h, int k_w, int in_c, int dil_w, int16_t *packed);
#ifdef EM_HAVE_NEON
/* The SDOT paths (gemm_neon.c), on the same int8 section (packed where the CPU has the dot product): they run
 * the whole op and return 1 when the dotprod path is in effect, else 0 having done nothing. */
int em_conv2d_sdot(const em_conv_args *a);
int em_fully_connected_sdot(const em_fc_args *a);
/* CONV_2D without im2col on the neon path (gemm_neon.c): 1 when it ran the op (neon in effect, the shape fits) */
int em_conv2d_neon(const em_conv_args *a);
#endif

/* ---- TRANSPOSE of 1-byte elements (transpose.c): out (contiguous, dims) <-
 * in[sum(i[k] * in_strides[k])]; the lowering merges axes that stay adjacent. */
typedef struct {
    const int8_t *in; int8_t *out;
    int dims[5];
    long in_strides[5];
} em_transpose_args;
void em_transpose(const void *args);

/* ---- QUANTIZE float -> uint8, DEQUANTIZE uint8 -> float (quantize.c; em_quant_args) ---- */
void em_quantize_f32_u8(const void *args);
void em_dequantize_u8(const void *args);

/* ---- MAXIMUM, MINIMUM on int8 with broadcasting (minmax.c; em_binary_args: dims and strides only) ---- */
void em_maximum(const void *args);
void em_minimum(const void *args);

/* ---- SUB on int8 (add.c; em_binary_args as ADD, input 2's multiplier negated, no int16 wrap) ---- */
void em_sub(const void *args);

/* ---- float lookup tables of TANH, GELU, ELU, EXP (lut_float.c): the interpreter's LUTPopulateInt8 with the op's float
 * transform and libm; run by em_lut. */
enum { EM_LUT_TANH = 0, EM_LUT_GELU = 1, EM_LUT_GELU_APPROX = 2, EM_LUT_ELU = 3, EM_LUT_EXP = 4 };
void em_float_lut_table(int kind, float in_scale, int32_t in_zp, float out_scale, int32_t out_zp, int8_t *table);

/* ---- RESIZE_BILINEAR on int8 (resize_bilinear.c): ResizeBilinearInteger with the per-row / per-column source
 * indices and 1/1024 fractions precomputed: ymap = [y0[out_h], y1[out_h], dy[out_h]], xmap likewise. */
typedef struct {
    const int8_t *in; int8_t *out;
    int batch, in_h, in_w, channels, out_h, out_w;
    const int32_t *ymap, *xmap;
} em_resize_bilinear_args;
void em_resize_bilinear(const void *args);

/* ---- PRELU on int8 (prelu.c; em_binary_args: in2 = alpha, in1_mult/in1_shift for x >= zp, in2_mult/in2_shift
 * for the negative side) ---- */
void em_prelu(const void *args);

/* ---- BATCH_MATMUL on int8 (batch_matmul.c): out [batch..., rows, cols] contiguous; lhs element (i, k) at
 * i * lhs_rs + k * lhs_ks, rhs element (k, c) at k * rhs_ks + c * rhs_cs, batch strides 0 where broadcast. */
typedef struct {
    const int8_t *lhs, *rhs; int8_t *out;
    int batch[3];
    long lhs_bs[3], rhs_bs[3];
    int rows, cols, depth;
    long lhs_rs, lhs_ks, rhs_ks, rhs_cs;
    int32_t lhs_offset, rhs_offset, out_zp, mult, shift;
    int16_t *scratch;           /* (rows + cols) * depth int16: the widened operands */
} em_batch_matmul_args;
void em_batch_matmul(const void *args);

/* ---- ARG_MAX / ARG_MIN (arg_min_max.c): input [outer][axis_size][inner], first index on ties ---- */
typedef struct {
    const int8_t *in; void *out;   /* out: int32 or int64 [outer][inner] */
    long outer; int axis_size, inner;
    int is_max, out64, is_unsigned;
    int32_t *scratch;              /* 2 * inner int32 */
} em_arg_min_max_args;
void em_arg_min_max(const void *args);

/* ---- REDUCE_MAX / REDUCE_MIN on int8 (reduce_max.c): input a contiguous 5-D box; out_strides 0 on reduced axes */
typedef struct {
    const int8_t *in; int8_t *out;
    int dims[5];
    long out_strides[5];
    long out_size;
    int is_max;
} em_reduce_args;
void em_reduce_max(const void *args);

/* ---- RESIZE_NEAREST_NEIGHBOR with any index map (resize_nearest.c) ---- */
typedef struct {
    const void *in; void *out;
    int batch, in_h, in_w, channels, out_h, out_w, elem_size;
    const int32_t *ymap, *xmap;    /* source row per output row, source column per output column */
} em_resize_nearest_args;
void em_resize_nearest(const void *args);

/* ---- GATHER with constant positions (gather.c): [outer][axis_size][inner] -> [outer][n][inner] ---- */
typedef struct {
    const void *in; void *out;
    long outer; int axis_size, inner, n, elem_size;
    const int32_t *pos;            /* n positions, each in [0, axis_size) */
} em_gather_args;
void em_gather(const void *args);

/* ---- LOG_SOFTMAX int8 (log_softmax.c): SOFTMAX's exp table (beta 1), logf of the in-order float sum ---- */
typedef struct {
    const int8_t *in; int8_t *out;
    int outer, depth;
    const float *table;            /* em_softmax_table(in_scale, 1) */
    float in_scale, out_scale;
    int32_t out_zp;
} em_log_softmax_args;
void em_log_softmax(const void *args);

/* ---- SQUARED_DIFFERENCE on int8 (squared_difference.c; em_binary_args as ADD, left_shift 7) ---- */
void em_squared_difference(const void *args);

/* ---- SUM on int8 (reduce_sum.c): REDUCE_MAX's fold into int32 sums, then the interpreter's float rescale ---- */
typedef struct {
    em_reduce_args r;              /* in, out, dims, out_strides, out_size (is_max unused) */
    int32_t *scratch;              /* out_size int32 */
    float in_scale, out_scale;
    int32_t in_zp, out_zp;
    long count;                    /* elements summed per output */
} em_reduce_sum_args;
void em_reduce_sum(const void *args);

#endif
