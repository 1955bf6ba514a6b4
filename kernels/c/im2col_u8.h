/* The u8 im2col of the VNNI conv path (internal to gemm_vnni.c), included once per
 * flip routine: the includer defines IM2COL_NAME, IM2COL_ATTR (a target attribute or
 * nothing) and IM2COL_FLIP(x, y, n) (y[i] = x[i] ^ 0x80 for i < n). */
/* Rows m0..m1 of the im2col matrix as u8 (row m at dst + (m - m0) * k4). */
static IM2COL_ATTR void IM2COL_NAME(const em_conv_args *a, int K, int k4, int m0, int m1, uint8_t *dst) {
    const int hw = a->out_h * a->out_w;
    const uint8_t pad = (uint8_t)(128 - a->in_offset); /* the zero point, flipped */
    if (a->k_h == 1 && a->k_w == 1 && a->stride_h == 1 && a->stride_w == 1 && a->pad_top == 0 &&
        a->pad_left == 0) {
        /* pointwise conv: the rows are the input pixels themselves */
        if (k4 == K) {
            flip_avx2(a->in + (size_t)m0 * K, dst, (size_t)(m1 - m0) * K);
            return;
        }
        for (int m = m0; m < m1; m++) {
            uint8_t *row = dst + (size_t)(m - m0) * k4;
            IM2COL_FLIP(a->in + (size_t)m * K, row, K);
            memset(row + K, 0, (size_t)(k4 - K));
        }
        return;
    }
    const int run = a->k_w * a->in_c; /* one filter row of taps, contiguous in memory when dil_w == 1 */
    const int8_t *in_end = a->in + (size_t)a->batch * a->in_h * a->in_w * a->in_c;
    /* A run of up to 32 bytes may go as whole 16-byte blocks (flip_over): the bytes past it are rewritten by
     * what follows in the row (runs, padding and rows are written in order), and the last row's spill (< 32
     * bytes) stays inside this thread's scratch, EM_CONV_ROWS rows of 2 kp >= k4 + 32 bytes when kp >= 4. */
    const int over = ((K + 1) & ~1) >= 4;
    /* the output position advances with m: no divisions per row */
    int b = m0 / hw, oy = (m0 % hw) / a->out_w, ox = m0 % a->out_w;
    for (int m = m0; m < m1; m++, ox++) {
        if (ox == a->out_w) {
            ox = 0;
            if (++oy == a->out_h) oy = 0, b++;
        }
        uint8_t *row = dst + (size_t)(m - m0) * k4;
        int idx = 0;
        const int ix0 = ox * a->stride_w - a->pad_left;
        const int row_inside = a->dil_w == 1 && ix0 >= 0 && ix0 + a->k_w <= a->in_w;
        for (int kh = 0; kh < a->k_h; kh++) {
            int iy = oy * a->stride_h - a->pad_top + kh * a->dil_h;
            if (iy < 0 || iy >= a->in_h) {
                memset(row + idx, pad, (size_t)run);
                idx += run;
                continue;
            }
            const int8_t *line = a->in + ((size_t)b * a->in_h + iy) * a->in_w * a->in_c;
            if (row_inside) {
                const int8_t *src = line + (size_t)ix0 * a->in_c;
                if (!over || !flip_over(src, row + idx, run, in_end)) IM2COL_FLIP(src, row + idx, run);
                idx += run;
                continue;
            }
            for (int kw = 0; kw < a->k_w; kw++) {
                int ix = ix0 + kw * a->dil_w;
                if (ix < 0 || ix >= a->in_w)
                    memset(row + idx, pad, (size_t)a->in_c);
                else
                    IM2COL_FLIP(line + (size_t)ix * a->in_c, row + idx, a->in_c);
                idx += a->in_c;
            }
        }
        if (idx < k4) memset(row + idx, 0, (size_t)(k4 - idx)); /* weights are 0 there */
    }
}

