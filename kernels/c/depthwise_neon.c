/* NEON path of DEPTHWISE_CONV_2D (aarch64), every depth multiplier.  Output channels go in groups of 16 held in
 * four int32x4 accumulators over all taps of an output pixel: (x + in_offset) fits int16 ([-255, 255]); saddw
 * widens the input bytes onto the offset, smlal / smlal2 multiply by the int16 weights and add to int32 lanes,
 * exactly the portable body's int32 sums, so the bytes are the portable path's whatever the order; the output
 * stage is requant.h's NEON requantization.  Output lane j of the group at c0 reads input channel
 * (c0 + j) / dm = base + idx[j], idx[j] <= 15: one 16-byte load from channel base, and for dm > 1 a tbl by idx
 * gathers the group's 16 inputs (the same code for a broadcast, dm >= 16, where idx is all zeros).  Per output
 * row and group: the taps inside the image are found once per row and pixel (no per-tap checks), interior
 * pixels go 4 at a time on one weight load per tap, and a load that could read past the input tensor copies
 * its bytes first; a partial last group (or fewer than 16 channels) takes zero-padded weights from the stack.
 * The x86 dw_avx2_groups (depthwise_conv.c) is the same scheme on 8 lanes. */
#include <string.h>
#include "requant.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef EM_HAVE_NEON

/* Taps a group keeps its weights for on the stack when the group is partial; larger filters take the portable
 * body (em_dwconv_neon returns 0). */
#define DWN_MAX_TAPS 256

/* First and one-past-last filter tap along an axis that stay inside the image for output position o. */
static inline void dwn_taps(int o, int stride, int pad, int dil, int k, int in, int *k0, int *k1) {
    int lo = 0, hi = k;
    while (lo < hi && o * stride - pad + lo * dil < 0) lo++;
    while (hi > lo && o * stride - pad + (hi - 1) * dil >= in) hi--;
    *k0 = lo;
    *k1 = hi;
}

/* acc0..3 += (x + off) * w for the 16 gathered input bytes x and the 16 int16 weights w0 (lanes 0-7), w1 (8-15) */
#define DWN_MAC(s, x, w0, w1)                                                                                \
    do {                                                                                                     \
        const int16x8_t xl = vaddw_s8(off, vget_low_s8(x)), xh = vaddw_high_s8(off, x);                     \
        s##0 = vmlal_s16(s##0, vget_low_s16(xl), vget_low_s16(w0));                                          \
        s##1 = vmlal_high_s16(s##1, xl, w0);                                                                 \
        s##2 = vmlal_s16(s##2, vget_low_s16(xh), vget_low_s16(w1));                                          \
        s##3 = vmlal_high_s16(s##3, xh, w1);                                                                 \
    } while (0)

/* 16 bytes from p: the last bytes of the tensor (p + 16 past in_end) are copied into a zeroed block first.  At
 * least the group's bytes (base + idx[n - 1] < in_c) lie inside the pixel, so they are all copied. */
static inline int8x16_t dwn_load_checked(const int8_t *p, const int8_t *in_end) {
    if (p + 16 <= in_end) return vld1q_s8(p);
    int8_t t[16] = {0};
    memcpy(t, p, (size_t)(in_end - p));
    return vld1q_s8(t);
}

/* 4 interior output pixels per step (every tap inside the image, loads unchecked), one weight load per tap for
 * the 4; GX(v) turns the 16 bytes v loaded from channel base into the group's 16 inputs. */
#define DWN_QUADS(GX)                                                                                        \
    for (ox = ox_lo; ox + 4 <= ox_hi; ox += 4) {                                                              \
        int32x4_t s0 = bs0, s1 = bs1, s2 = bs2, s3 = bs3, t0 = bs0, t1 = bs1, t2 = bs2, t3 = bs3;           \
        int32x4_t u0 = bs0, u1 = bs1, u2 = bs2, u3 = bs3, v0 = bs0, v1 = bs1, v2 = bs2, v3 = bs3;           \
        for (int kh = ky0; kh < ky1; kh++) {                                                                 \
            const int8_t *p = img + ((size_t)(oy * a->stride_h - a->pad_top + kh * a->dil_h) * a->in_w +    \
                                     (size_t)(ox * sw - a->pad_left)) * in_c + base;                        \
            const int16_t *wk = wg + (size_t)kh * a->k_w * ws;                                               \
            for (int kw = 0; kw < a->k_w; kw++, p += (size_t)a->dil_w * in_c, wk += ws) {                   \
                const int16x8_t w0 = vld1q_s16(wk), w1 = vld1q_s16(wk + 8);                                  \
                const int8x16_t x0 = GX(vld1q_s8(p)), x1 = GX(vld1q_s8(p + step));                            \
                const int8x16_t x2 = GX(vld1q_s8(p + 2 * step)), x3 = GX(vld1q_s8(p + 3 * step));             \
                DWN_MAC(s, x0, w0, w1);                                                                      \
                DWN_MAC(t, x1, w0, w1);                                                                      \
                DWN_MAC(u, x2, w0, w1);                                                                      \
                DWN_MAC(v, x3, w0, w1);                                                                      \
            }                                                                                                \
        }                                                                                                    \
        int8_t *o = orow + (size_t)ox * C + c0;                                                              \
        em_requant16_neon(s0, s1, s2, s3, &a->rq, c0, n, o);                                                 \
        em_requant16_neon(t0, t1, t2, t3, &a->rq, c0, n, o + C);                                             \
        em_requant16_neon(u0, u1, u2, u3, &a->rq, c0, n, o + 2 * (size_t)C);                                 \
        em_requant16_neon(v0, v1, v2, v3, &a->rq, c0, n, o + 3 * (size_t)C);                                 \
    }
#define DWN_GX_TBL(v) vqtbl1q_s8((v), idx) /* lane j: channel base + idx[j] */
#define DWN_GX_SAME(v) (v)                 /* multiplier 1: lane j is channel c0 + j */

/* One output row (batch b, row oy) of the groups g0 <= g < g1 of 16 output channels, any depth multiplier. */
static void dw_neon_row_groups(const em_dwconv_args *a, int b, int oy, int g0, int g1) {
    const int C = a->out_c, dm = a->depth_mult, in_c = a->in_c, sw = a->stride_w, taps = a->k_h * a->k_w;
    const int8_t *in_end = a->in + (size_t)a->batch * a->in_h * a->in_w * in_c;
    const int16x8_t off = vdupq_n_s16((int16_t)a->in_offset);
    const size_t step = (size_t)sw * in_c; /* input bytes from one output pixel to the next */
    int ox_lo = 0, ox_hi = a->out_w;      /* [ox_lo, ox_hi): every kw tap inside the image */
    while (ox_lo < a->out_w && ox_lo * sw - a->pad_left < 0) ox_lo++;
    while (ox_hi > ox_lo && (ox_hi - 1) * sw - a->pad_left + (a->k_w - 1) * a->dil_w >= a->in_w) ox_hi--;
    int ky0, ky1;
    dwn_taps(oy, a->stride_h, a->pad_top, a->dil_h, a->k_h, a->in_h, &ky0, &ky1);
    const int8_t *img = a->in + (size_t)b * a->in_h * a->in_w * in_c;
    int8_t *orow = a->out + ((size_t)b * a->out_h + oy) * a->out_w * C;
    int16_t wpart[DWN_MAX_TAPS * 16];
    for (int g = g0; g < g1; g++) {
        const int c0 = g * 16, n = C - c0 < 16 ? C - c0 : 16;
        const int base = c0 / dm;
        /* idx[j] = (c0 + j) / dm - base, stepped without divisions (lanes past n repeat lane n - 1); unused at
         * dm 1, where lane j is channel c0 + j as loaded */
        uint8_t ti[16];
        for (int j = 0, q = 0, r = c0 % dm, last = 0; j < 16; j++) {
            if (j < n) {
                last = q;
                if (++r == dm) r = 0, q++;
            }
            ti[j] = (uint8_t)last;
        }
        const uint8x16_t idx = vld1q_u8(ti);
        /* the group's weights, tap t at wg + t * ws: in place when 16 channels are there, else zero-padded */
        const int16_t *wg = a->w + c0;
        size_t ws = (size_t)C;
        if (n < 16) {
            memset(wpart, 0, (size_t)taps * 16 * sizeof(int16_t));
            for (int t = 0; t < taps; t++) memcpy(wpart + t * 16, a->w + (size_t)t * C + c0, (size_t)n * 2);
            wg = wpart;
            ws = 16;
        }
        const int32x4_t bs0 = vld1q_s32(a->bias + c0), bs1 = vld1q_s32(a->bias + c0 + 4); /* padded to 16 */
        const int32x4_t bs2 = vld1q_s32(a->bias + c0 + 8), bs3 = vld1q_s32(a->bias + c0 + 12);
        /* no 16-byte load of this row (its last input row's last pixel, channel base) passes the tensor's end */
        const int iy_last = oy * a->stride_h - a->pad_top + (ky1 - 1) * a->dil_h;
        const int safe = ky1 <= ky0 ||
                         img + (((size_t)iy_last * a->in_w + a->in_w - 1) * in_c + base + 16) <= in_end;
        int ox = 0;
        if (safe && dm == 1) {
            DWN_QUADS(DWN_GX_SAME)
        } else if (safe) {
            DWN_QUADS(DWN_GX_TBL)
        }
        const int q_lo = safe ? ox_lo : 0, q_hi = safe ? ox : 0; /* [q_lo, q_hi): done above */
        for (ox = 0; ox < a->out_w; ox++) {
            if (ox == q_lo && q_hi > q_lo) ox = q_hi;
            if (ox >= a->out_w) break;
            int kx0, kx1;
            dwn_taps(ox, sw, a->pad_left, a->dil_w, a->k_w, a->in_w, &kx0, &kx1);
            int32x4_t s0 = bs0, s1 = bs1, s2 = bs2, s3 = bs3;
            for (int kh = ky0; kh < ky1; kh++) {
                const int8_t *line = img + (size_t)(oy * a->stride_h - a->pad_top + kh * a->dil_h) * a->in_w * in_c;
                for (int kw = kx0; kw < kx1; kw++) {
                    const int ix = ox * sw - a->pad_left + kw * a->dil_w;
                    const int16_t *wk = wg + ((size_t)kh * a->k_w + kw) * ws;
                    const int16x8_t w0 = vld1q_s16(wk), w1 = vld1q_s16(wk + 8);
                    const int8_t *q = line + (size_t)ix * in_c + base;
                    const int8x16_t v = safe ? vld1q_s8(q) : dwn_load_checked(q, in_end);
                    const int8x16_t x = dm == 1 ? v : DWN_GX_TBL(v);
                    DWN_MAC(s, x, w0, w1);
                }
            }
            em_requant16_neon(s0, s1, s2, s3, &a->rq, c0, n, orow + (size_t)ox * C + c0);
        }
    }
}

static void dw_neon_groups(const em_dwconv_args *a) {
    const int rows = a->batch * a->out_h, G = (a->out_c + 15) / 16;
#pragma omp parallel for num_threads(a->threads) schedule(static) if (a->threads > 1)
    for (int r = 0; r < rows; r++) dw_neon_row_groups(a, r / a->out_h, r % a->out_h, 0, G);
}

int em_dwconv_neon(const em_dwconv_args *a) {
    if (em_isa_get() < EM_ISA_NEON) return 0;
    /* a partial group copies its weights to the stack: DWN_MAX_TAPS taps at most */
    if (a->k_h * a->k_w > DWN_MAX_TAPS && a->out_c % 16) return 0;
    dw_neon_groups(a);
    return 1;
}

#endif
