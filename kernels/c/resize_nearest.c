/* RESIZE_NEAREST_NEIGHBOR with any index map (non-whole factors, align_corners): each output pixel's channels are
 * copied from the input pixel the lowering's per-row / per-column source indices name (computed as
 * reference_ops::GetNearestNeighbor, kernels/ref/resize_nearest.py).  Whole-factor repeats keep the faster strided
 * copy (resize.py); this kernel takes the rest.  Elements of elem_size bytes (int8, uint8). */
#include <string.h>
#include "em_kernels.h"

void em_resize_nearest(const void *args) {
    const em_resize_nearest_args *a = (const em_resize_nearest_args *)args;
    const size_t px = (size_t)a->channels * a->elem_size, in_row = px * a->in_w, out_row = px * a->out_w;
    const uint8_t *in = (const uint8_t *)a->in;
    uint8_t *out = (uint8_t *)a->out;
    for (int b = 0; b < a->batch; b++) {
        const uint8_t *img = in + (size_t)b * a->in_h * in_row;
        for (int y = 0; y < a->out_h; y++, out += out_row) {
            if (y > 0 && a->ymap[y] == a->ymap[y - 1]) { /* the same source row: copy the output row above */
                memcpy(out, out - out_row, out_row);
                continue;
            }
            const uint8_t *row = img + (size_t)a->ymap[y] * in_row;
            for (int x = 0; x < a->out_w; x++) memcpy(out + x * px, row + (size_t)a->xmap[x] * px, px);
        }
    }
}
