/* DEPTHWISE_CONV_2D.  Channels are innermost so the compiler vectorizes the
 * multiply-accumulate; the same body is compiled once for the portable target
 * and once with AVX2 enabled (and that copy requantizes with AVX2 too). */
#include <string.h>
#include "requant.h"

#define DW_BODY(REQUANT_ROW)                                                                              \
    const int ocp = (a->out_c + 15) & ~15;                                                                \
    const int rows = a->batch * a->out_h;                                                                 \
    _Pragma("omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)")            \
    for (int r = 0; r < rows; r++) {                                                                      \
        int b = r / a->out_h, oy = r % a->out_h;                                                          \
        int tid = 0;                                                                                      \
        DW_TID(tid);                                                                                      \
        int32_t *restrict acc = a->scratch + (size_t)tid * ocp;                                           \
        for (int ox = 0; ox < a->out_w; ox++) {                                                           \
            memcpy(acc, a->bias, (size_t)a->out_c * sizeof(int32_t));                                     \
            for (int kh = 0; kh < a->k_h; kh++) {                                                         \
                int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;                                   \
                if (iy < 0 || iy >= a->in_h) continue;                                                    \
                for (int kw = 0; kw < a->k_w; kw++) {                                                     \
                    int ix = ox * a->stride_w - a->pad_left + kw * a->dil_w;                              \
                    if (ix < 0 || ix >= a->in_w) continue;                                                \
                    const int8_t *restrict px = a->in + (((size_t)b * a->in_h + iy) * a->in_w + ix) * a->in_c; \
                    const int16_t *restrict w = a->w + ((size_t)kh * a->k_w + kw) * a->out_c;             \
                    const int32_t off = a->in_offset;                                                     \
                    if (a->depth_mult == 1) {                                                             \
                        for (int c = 0; c < a->out_c; c++) acc[c] += (int32_t)(px[c] + off) * w[c];       \
                    } else {                                                                              \
                        const int dm = a->depth_mult;                                                     \
                        for (int c = 0; c < a->in_c; c++)                                                 \
                            for (int m = 0; m < dm; m++) acc[c * dm + m] += (int32_t)(px[c] + off) * w[c * dm + m]; \
                    }                                                                                     \
                }                                                                                         \
            }                                                                                             \
            REQUANT_ROW(acc, a->out_c, &a->rq, 0, a->out + (((size_t)b * a->out_h + oy) * a->out_w + ox) * a->out_c); \
        }                                                                                                 \
    }

#ifdef _OPENMP
#include <omp.h>
#define DW_TID(t) (t) = omp_get_thread_num()
#else
#define DW_TID(t) (void)(t)
#endif

static void dw_portable(const em_dwconv_args *a) { DW_BODY(em_requant_row_portable) }

#ifdef EM_HAVE_AVX2
static EM_AVX2 void dw_avx2(const em_dwconv_args *a) { DW_BODY(em_requant_row_avx2) }
#endif

void em_depthwise_conv2d(const void *args) {
    const em_dwconv_args *a = (const em_dwconv_args *)args;
#ifdef EM_HAVE_AVX2
    if (em_isa_get() >= EM_ISA_AVX2) { dw_avx2(a); return; }
#endif
    dw_portable(a);
}
