/* TRANSPOSE of 1-byte elements: a gather into a contiguous output.  The output
 * is walked in order (dims, up to 5-D after merging axes that stay adjacent);
 * in_strides[k] is the input stride (elements) of the axis that becomes output
 * axis k.  Pure data movement, so every instruction set gives the same bytes.
 *
 * When the innermost output axis is not contiguous in the input, the last two
 * axes are walked in 32 x 32 tiles, so a tile's reads and writes stay in L1
 * while one side moves with a large stride; where the input runs along the
 * output's rows, 8 x 8 byte blocks are transposed in 64-bit registers. */
#include <string.h>
#include "em_kernels.h"

#define EM_TILE 32

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define EM_T8 1
/* 8 x 8 bytes transposed in registers: w[i] holds row i (byte j = column j, little-endian);
 * three rounds swap 4x4, 2x2 and 1x1 blocks between rows.  Plain integer code: the same
 * bytes on every CPU, and 8x fewer loads and stores than byte by byte. */
static inline void t8(uint64_t w[8]) {
    for (int i = 0; i < 4; i++) {
        const uint64_t a = w[i], b = w[i + 4];
        w[i] = (a & 0x00000000FFFFFFFFull) | (b << 32);
        w[i + 4] = (a >> 32) | (b & 0xFFFFFFFF00000000ull);
    }
    for (int i = 0; i < 8; i += (i & 1) ? 3 : 1) {  /* pairs (0,2) (1,3) (4,6) (5,7) */
        const uint64_t a = w[i], b = w[i + 2], m = 0x0000FFFF0000FFFFull;
        w[i] = (a & m) | ((b << 16) & ~m);
        w[i + 2] = ((a >> 16) & m) | (b & ~m);
    }
    for (int i = 0; i < 8; i += 2) {
        const uint64_t a = w[i], b = w[i + 1], m = 0x00FF00FF00FF00FFull;
        w[i] = (a & m) | ((b << 8) & ~m);
        w[i + 1] = ((a >> 8) & m) | (b & ~m);
    }
}
#else
#define EM_T8 0
#endif

/* out[r][c] (rows of n4) = in[r * s3 + c * s4] for r < n3, c < n4, in tiles. */
static void tile_2d(const int8_t *in, int8_t *out, int n3, int n4, long s3, long s4) {
    for (int r0 = 0; r0 < n3; r0 += EM_TILE) {
        const int nr = n3 - r0 < EM_TILE ? n3 - r0 : EM_TILE;
        for (int c0 = 0; c0 < n4; c0 += EM_TILE) {
            const int nc = n4 - c0 < EM_TILE ? n4 - c0 : EM_TILE;
            if (s3 == 1 && n4 < 8) {  /* short output rows (NCHW -> NHWC, few channels): read runs of r */
                for (int c = c0; c < c0 + nc; c++) {
                    const int8_t *src = in + c * s4 + r0;
                    for (int r = 0; r < nr; r++) out[(long)(r0 + r) * n4 + c] = src[r];
                }
                continue;
            }
            int r8 = 0, c8 = 0;
#if EM_T8
            if (s3 == 1) {  /* 8 x 8 blocks: 8 input runs of 8 bytes become 8 output runs of 8 */
                r8 = nr - nr % 8;
                c8 = nc - nc % 8;
                for (int r = r0; r < r0 + r8; r += 8)
                    for (int c = c0; c < c0 + c8; c += 8) {
                        uint64_t w[8];
                        for (int j = 0; j < 8; j++) memcpy(&w[j], in + (c + j) * s4 + r, 8);
                        t8(w);
                        for (int i = 0; i < 8; i++) memcpy(out + (long)(r + i) * n4 + c, &w[i], 8);
                    }
            }
#endif
            /* what the blocks left: rows r0 + r8.., and columns c0 + c8.. of the block rows */
            for (int r = r0; r < r0 + nr; r++) {
                const int8_t *src = in + r * s3;
                int8_t *dst = out + (long)r * n4;
                for (int c = (r < r0 + r8 ? c0 + c8 : c0); c < c0 + nc; c++) dst[c] = src[c * s4];
            }
        }
    }
}

void em_transpose(const void *args) {
    const em_transpose_args *a = (const em_transpose_args *)args;
    const int8_t *in = a->in;
    int8_t *out = a->out;
    const long s0 = a->in_strides[0], s1 = a->in_strides[1], s2 = a->in_strides[2];
    const long s3 = a->in_strides[3], s4 = a->in_strides[4];
    const int n3 = a->dims[3], n4 = a->dims[4];
    for (int i0 = 0; i0 < a->dims[0]; i0++)
        for (int i1 = 0; i1 < a->dims[1]; i1++)
            for (int i2 = 0; i2 < a->dims[2]; i2++) {
                const int8_t *plane = in + i0 * s0 + i1 * s1 + i2 * s2;
                if (s4 == 1) {
                    for (int i3 = 0; i3 < n3; i3++) memcpy(out + (long)i3 * n4, plane + i3 * s3, (size_t)n4);
                } else {
                    tile_2d(plane, out, n3, n4, s3, s4);
                }
                out += (long)n3 * n4;
            }
}
