/* Checks requant.h's NEON requantization against the portable formula (fixedpoint.h), lane by lane: random
 * accumulators, multipliers and shifts, plus every tie of the final shift (the values where rounding rules
 * differ), both rounding modes (ties up below round_up_below, away from zero above) and a boundary that falls
 * inside a 4-lane block.  Built for aarch64 and run under qemu-user by tests/test_neon_requant.py.
 * Prints the number of mismatching lanes and exits 1 if any. */
#include <stdio.h>
#include <stdlib.h>
#include "requant.h"

static uint64_t s = 88172645463325252ULL;
static uint32_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (uint32_t)s; }

int main(void) {
    long bad = 0, checked = 0;
    int32_t mult[16], shift[16], acc[16];
    int8_t got[16];
    for (int it = 0; it < 400000; it++) {
        for (int i = 0; i < 16; i++) {
            mult[i] = (int32_t)((1u << 30) | (rnd() & 0x3fffffff));
            int sh = (int)(rnd() % 24) - 16;             /* right shifts 0..16, left shifts up to 7 */
            if (it % 7 == 0) sh = -(int)(rnd() % 12);
            shift[i] = sh;
            int32_t a;
            switch (it % 4) {
            case 0: a = (int32_t)rnd(); break;                          /* anything, left shift may wrap */
            case 1: a = (int32_t)(rnd() % 200001) - 100000; break;       /* conv-sized accumulators */
            case 2: a = (int32_t)(rnd() % 2001) - 1000; break;
            default: {
                /* a tie after the high mul: pick hm = (2q + 1) 2^(r-1) and invert approximately;
                 * multiplier 2^30 makes hm = round(a / 2), so a = 2 hm hits it exactly */
                mult[i] = 1 << 30;
                int r = -sh > 0 ? -sh : 1; shift[i] = -r;
                int32_t q = (int32_t)(rnd() % 201) - 100;
                a = 2 * ((2 * q + 1) * (1 << (r - 1)));
            }
            }
            acc[i] = a;
        }
        em_requant rq = {mult, shift, (int32_t)(rnd() % 256) - 128, -128, 127, (int)(rnd() % 18)};
        if (it % 5 == 0) { rq.act_min = -100; rq.act_max = 90; }
        if (it % 3 == 0) rq.round_up_below = (it % 2) ? 0 : 16;
        int n = (it % 11 == 0) ? 1 + (int)(rnd() % 16) : 16;
        em_requant_row_neon(acc, n, &rq, 0, got);
        int8_t want[16];
        em_requant_row_portable(acc, n, &rq, 0, want);
        for (int i = 0; i < n; i++) {
            checked++;
            if (got[i] != want[i]) {
                if (bad < 5)
                    printf("lane %d acc %d mult %d shift %d up %d: neon %d portable %d\n", i, acc[i], mult[i],
                           shift[i], i < rq.round_up_below, got[i], want[i]);
                bad++;
            }
        }
    }
    printf("checked %ld lanes, %ld mismatches\n", checked, bad);
    return bad != 0;
}
