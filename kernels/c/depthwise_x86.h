/* The x86 depthwise plan: DEPTHWISE_CONV_2D as a 1-D convolution along an output row's flat (pixel, channel)
 * bytes.  Internal to depthwise_conv.c (which builds it and runs the rows) and depthwise_avx512.c.
 *
 * With C = out_c, output byte f = ox * C + c of row oy is bias'[c] + sum over taps t = (kh, kw) of
 * w[t][c] * u_t[f], where u_t is the input row iy(kh) laid out for tap kw: padded with the input zero point,
 * split into stride_w phases (padded pixel X at phase X % stride_w, index X / stride_w), each input channel
 * repeated depth_mult times, and stored as u8 (x + 128, i.e. x ^ 0x80).  Then every tap reads output chunk f
 * at one flat offset of one row buffer, whatever the stride, dilation or channel count.  The +128 and the
 * input offset fold into bias' = bias + (in_offset - 128) * sum_t w[t][c] (pads hold x = zero point, so they
 * add (zp + in_offset) * w = 0, as the interpreter's skipped taps; rows above and below the image read a
 * row buffer of pads).
 *
 * vpdpbusd sums 4 bytes into a 32-bit lane.  The VNNI paths interleave each input row's taps (4 horizontal taps
 * of one output byte to a 32-bit lane, em_dw_ilv_fn) once per input row, so one vpdpbusd does 4 taps of 16
 * (8) outputs.  The avx2 path (vpmaddubsw would saturate on 2 products a pair) uses "spread" weights: weight row
 * j (0, 1) keeps only the bytes at flat positions = j mod 2, so each 16-bit product lane holds one product, and
 * lane i of stream k's (0..3) accumulator is output byte f + 4i + k (streams j and j + 2 widened from row j).  Weights and
 * requantization constants repeat with the channel, so they are stored over one period P = lcm(C, 8) plus a
 * chunk (a chunk at f reads them from ph = f mod P, a multiple of 8 for chunks of 32 or 64 bytes).  The
 * requantization is MultiplyByQuantizedMultiplier's double rounding as one 64-bit rounding:
 * floor((floor((p + 2^30) / 2^31) + c) / 2^r) = floor((p + 2^30 + c 2^31) / 2^(31 + r)) for p = x * mult and
 * integer c (nested floors of positive divisors), with c = 2^(r-1) for ties up (r >= 1), minus 1 where y < 0,
 * i.e. p < -2^30, for ties away from zero (RoundingDivideByPOT), and no c at r = 0. */
#ifndef EDGE_MAAS_DEPTHWISE_X86_H
#define EDGE_MAAS_DEPTHWISE_X86_H
#include "em_kernels.h"

/* Requantization constants of 4 streams x Q lanes; lane l of stream k is one channel (each layout its map). */
typedef struct {
    int Q;
    const int32_t *bias;     /* [4][Q] bias' */
    const int32_t *left;     /* [4][Q] left shift */
    const int32_t *d32;      /* [4][Q] 2^(63 - s) mod 2^32: the offset the AVX2 logical shift leaves */
    const int32_t *hs;       /* [4][Q] s - 32: the arithmetic shift of the sums' high halves (odd_high) */
    /* [4][Q/2] 64-bit, even (e) and odd (o) lanes l = 2j, 2j + 1: multiplier (low half), rounding addend
     * 2^30 + c 2^31 (k2: plus 2^63 for the logical shifts of AVX2), shift 31 + r (so: s - 32 where odd_high),
     * 2^31 for ties away */
    const int64_t *me, *mo, *ke, *ko, *ke2, *ko2, *se, *so, *awe, *awo;
} em_dw_consts;

typedef struct {
    int C, P, PL, taps, k_h; /* channels (out_c), period lcm(C, 8), bytes per weight stream (P + 64) */
    int any_left, any_away;  /* some channel shifts left; some rounds ties away from zero */
    int odd_high;            /* every channel shifts right (r >= 1): so holds s - 32, which leaves the odd lanes'
                              * result in the high half where they belong, without a shift by 32 */
    int fast;                /* odd_high, no left shift, no ties away: the AVX2 / AVX-VNNI rows built for it */
    int32_t zp, act_min, act_max;
    /* spread layout (avx2): lane l of stream k is output byte 4l + k of a chunk, channel (4l + k) % C */
    const int8_t *wsp;       /* [taps][2][PL] spread weights: [t][j][p] = w[t][p % C] where p % 2 == j, else 0 */
    em_dw_consts sp;
    /* tap-interleaved layout (VNNI paths): each 4-byte group holds 4 horizontal taps (kw = 4g..4g+3) of one
     * output byte; a 64 (32) byte chunk's 16 (8) output bytes per 128-bit lane L go 4 to each of 4 registers:
     * register k, lane L, dword m is output byte 16L + 4k + m, channel (4y - 3(y % 4) + 4k) % C at y = ph / 4 +
     * 4L + m (ph = the chunk's start mod P64 = lcm(C, 64)) */
    int G, P64, irlen;       /* tap groups per kernel row, period, bytes per group of an interleaved row */
    const int32_t *iw;       /* [k_h][G][4][in.Q] 4 taps' weights of lane y of register k */
    em_dw_consts in;
    /* row buffers: one input row = sw phase rows of Ls bytes; tap t reads row buffer + tap_off[t % k_w] */
    int sw, Ls, NS, Wj;      /* stride_w, bytes per phase row, ring slots per thread, pixels per phase row */
    size_t slot;             /* bytes per row buffer (sw * Ls) */
    size_t islot;            /* bytes per interleaved row (G * irlen) */
    const uint8_t *zprow;    /* a row of pads (rows outside the image), max(slot, islot) bytes */
    uint8_t *rings;          /* threads x NS row buffers */
    uint8_t *irings;         /* threads x NS interleaved rows */
    int tap_off[256];
} em_dw_plan;

/* One output row: out[0, len) from the taps' row-buffer pointers (len = out_w * C); the interleaved kernels
 * take one interleaved row per kernel row and tap group. */
typedef void (*em_dw_row_fn)(const em_dw_plan *p, const uint8_t *const *tap, int8_t *out, int len);
/* Interleave the phase rows the taps of one input row read (src: k_w pointers) into ir (G groups). */
typedef void (*em_dw_ilv_fn)(const em_dw_plan *p, const uint8_t *const *src, int k_w, uint8_t *ir, int len);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
void em_dw_row_avx512(const em_dw_plan *p, const uint8_t *const *ir, int8_t *out, int len);
void em_dw_ilv_avx512(const em_dw_plan *p, const uint8_t *const *src, int k_w, uint8_t *ir, int len);
#endif

#define EM_DW_INLINE inline __attribute__((always_inline))

/* NAME: one output row (em_dw_row_fn) in chunks of BYTES, two per CHUNKS(p, tap, out, len, f, ph, ph1, 1) call and
 * the last one alone (CHUNKS(..., f, ph, ph, 0)), ph the chunk's start mod PERIOD (the layout's constants' offset,
 * an expression of p); ATTR: its storage class and target. */
#define EM_DW_DEFINE_ROW(NAME, ATTR, CHUNKS, BYTES, PERIOD)                                                   \
    ATTR void NAME(const em_dw_plan *p, const uint8_t *const *tap, int8_t *out, int len) {                    \
        const int period_ = (PERIOD), step_ = (BYTES) % period_;                                              \
        int ph_ = 0, f_ = 0;                                                                                  \
        for (; f_ + (BYTES) < len; f_ += 2 * (BYTES)) {                                                       \
            int ph1_ = ph_ + step_;                                                                           \
            if (ph1_ >= period_) ph1_ -= period_;                                                             \
            CHUNKS(p, tap, out, len, f_, ph_, ph1_, 1);                                                       \
            ph_ = ph1_ + step_;                                                                               \
            if (ph_ >= period_) ph_ -= period_;                                                               \
        }                                                                                                     \
        if (f_ < len) CHUNKS(p, tap, out, len, f_, ph_, ph_, 0);                                              \
    }

/* The four accumulators a0..a3 of the chunk at constants' lane q0 and, when two, b0..b3 of the one at q1, set to
 * bias' (stream k at cs->bias + k * cs->Q): VEC the register type, LD its unaligned load. */
#define EM_DW_BIAS_INIT(VEC, LD, cs, q0, q1, two)                                                             \
    const int32_t *bias_ = (cs)->bias;                                                                        \
    const int Q_ = (cs)->Q;                                                                                   \
    VEC a0 = LD(bias_ + (q0)), a1 = LD(bias_ + Q_ + (q0)), a2 = LD(bias_ + 2 * Q_ + (q0)),                    \
        a3 = LD(bias_ + 3 * Q_ + (q0));                                                                       \
    VEC b0 = a0, b1 = a1, b2 = a2, b3 = a3;                                                                   \
    if (two)                                                                                                  \
        b0 = LD(bias_ + (q1)), b1 = LD(bias_ + Q_ + (q1)), b2 = LD(bias_ + 2 * Q_ + (q1)),                    \
        b3 = LD(bias_ + 3 * Q_ + (q1))

/* NAME: the interleaver of one ISA (em_dw_ilv_fn), a register of VEC (PFX: its intrinsics' prefix, _mm256_ or
 * _mm512_; LD, ST: its unaligned load and store) of each tap's phase row at a time: bytes of taps 4g..4g+3
 * interleaved (unpacks within 128-bit lanes), so register k of a chunk holds per lane L its bytes 16L + 4k.. */
#define EM_DW_DEFINE_ILV(NAME, ATTR, VEC, PFX, LD, ST)                                                        \
    ATTR void NAME(const em_dw_plan *p, const uint8_t *const *src, int k_w, uint8_t *ir, int len) {           \
        const int V = (int)sizeof(VEC);                                                                       \
        for (int g = 0; g < p->G; g++) {                                                                      \
            const uint8_t *s[4];                                                                              \
            for (int j = 0; j < 4; j++) s[j] = 4 * g + j < k_w ? src[4 * g + j] : p->zprow; /* weight 0 */    \
            uint8_t *d = ir + (size_t)g * p->irlen;                                                           \
            for (int f = 0; f < len; f += V, d += 4 * V) {                                                    \
                const VEC A = LD(s[0] + f), B = LD(s[1] + f), C = LD(s[2] + f), D = LD(s[3] + f);             \
                const VEC ab0 = PFX##unpacklo_epi8(A, B), ab1 = PFX##unpackhi_epi8(A, B);                     \
                const VEC cd0 = PFX##unpacklo_epi8(C, D), cd1 = PFX##unpackhi_epi8(C, D);                     \
                ST(d, PFX##unpacklo_epi16(ab0, cd0));                                                         \
                ST(d + V, PFX##unpackhi_epi16(ab0, cd0));                                                     \
                ST(d + 2 * V, PFX##unpacklo_epi16(ab1, cd1));                                                 \
                ST(d + 3 * V, PFX##unpackhi_epi16(ab1, cd1));                                                 \
            }                                                                                                 \
        }                                                                                                     \
    }

/* NAME: the interleaved layout's chunks f and, when two, f + V (V = sizeof(VEC): 16 (8) output bytes per
 * register), eight vpdpbusd chains (one chunk's four wait on the instruction's latency); per kernel row and tap
 * group one DPBUSD per register (4 taps each); OUT(a0, a1, a2, a3, q, out, n) requantizes a chunk and stores n
 * <= V of its bytes.  ir: one interleaved row per kernel row and tap group. */
#define EM_DW_DEFINE_ILV_CHUNKS(NAME, ATTR, VEC, LD, DPBUSD, OUT)                                             \
    static EM_DW_INLINE ATTR void NAME(const em_dw_plan *p, const uint8_t *const *ir, int8_t *out, int len,   \
                                       int f, int ph, int ph1, const int two) {                               \
        const int V = (int)sizeof(VEC), Y = p->in.Q, nr = p->k_h * p->G, q0 = ph >> 2, q1 = ph1 >> 2;        \
        EM_DW_BIAS_INIT(VEC, LD, &p->in, q0, q1, two);                                                        \
        const int32_t *w = p->iw + q0, *v = p->iw + q1;                                                       \
        for (int r = 0; r < nr; r++, w += 4 * (size_t)Y, v += 4 * (size_t)Y) {                                \
            const uint8_t *x = ir[r] + 4 * (size_t)f;                                                         \
            a0 = DPBUSD(a0, LD(x), LD(w));                                                                    \
            a1 = DPBUSD(a1, LD(x + V), LD(w + Y));                                                            \
            a2 = DPBUSD(a2, LD(x + 2 * V), LD(w + 2 * Y));                                                    \
            a3 = DPBUSD(a3, LD(x + 3 * V), LD(w + 3 * Y));                                                    \
            if (two) {                                                                                        \
                b0 = DPBUSD(b0, LD(x + 4 * V), LD(v));                                                        \
                b1 = DPBUSD(b1, LD(x + 5 * V), LD(v + Y));                                                    \
                b2 = DPBUSD(b2, LD(x + 6 * V), LD(v + 2 * Y));                                                \
                b3 = DPBUSD(b3, LD(x + 7 * V), LD(v + 3 * Y));                                                \
            }                                                                                                 \
        }                                                                                                     \
        OUT(a0, a1, a2, a3, q0, out + f, two ? V : len - f);                                                  \
        if (two) OUT(b0, b1, b2, b3, q1, out + f + V, len - f - V);                                           \
    }

/* vpshufb order per 16 bytes: packed by stream k at byte 4k + m (m: lane within the 16), wanted at 4m + k. */
#define EM_DW_UNSPREAD 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15

#endif
