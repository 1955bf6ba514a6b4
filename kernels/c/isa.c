/* Picks the instruction set at run time: AVX2 where the CPU has it (x86),
 * else the portable C path.  EDGE_MAAS_ISA=portable is applied by the Python
 * side through em_isa_set so tests can run both paths in one process. */
#include "em_kernels.h"

static int current = -1;

int em_isa_best(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return EM_ISA_AVX2;
#endif
    return EM_ISA_PORTABLE;
}

int em_isa_get(void) {
    if (current < 0) current = em_isa_best();
    return current;
}

int em_isa_set(int isa) {
    int best = em_isa_best();
    current = isa < 0 ? best : (isa > best ? best : isa);
    return current;
}
