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
 * (8) outputs.  The avx2 path (vpmaddubsw would saturate on 2 products a pair) uses "spread" weights: stream k (0..3) keeps only the bytes
 * at flat positions = k mod 4 and lane i of stream k's accumulator is output byte f + 4i + k.  Weights and
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
    int32_t zp, act_min, act_max;
    /* spread layout (avx2): lane l of stream k is output byte 4l + k of a chunk, channel (4l + k) % C */
    const int8_t *wsp;       /* [taps][4][PL] spread weights: [t][k][p] = w[t][p % C] where p % 4 == k, else 0 */
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

/* A row's chunks of BYTES, two per CHUNKS(f, ph, ph1, 1) call and the last one alone (CHUNKS(f, ph, ph, 0)), ph
 * the chunk's start mod PERIOD (the layout's constants' offset); len and the CHUNKS body in scope. */
#define EM_DW_CHUNK_LOOP(CHUNKS, BYTES, PERIOD)                                                               \
    do {                                                                                                      \
        const int step_ = (BYTES) % (PERIOD);                                                                 \
        int ph_ = 0, f_ = 0;                                                                                  \
        for (; f_ + (BYTES) < len; f_ += 2 * (BYTES)) {                                                       \
            int ph1_ = ph_ + step_;                                                                           \
            if (ph1_ >= (PERIOD)) ph1_ -= (PERIOD);                                                           \
            CHUNKS(f_, ph_, ph1_, 1);                                                                         \
            ph_ = ph1_ + step_;                                                                               \
            if (ph_ >= (PERIOD)) ph_ -= (PERIOD);                                                             \
        }                                                                                                     \
        if (f_ < len) CHUNKS(f_, ph_, ph_, 0);                                                                \
    } while (0)
#define EM_DW_INLINE inline __attribute__((always_inline))

/* vpshufb order per 16 bytes: packed by stream k at byte 4k + m (m: lane within the 16), wanted at 4m + k. */
#define EM_DW_UNSPREAD 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15

#endif
