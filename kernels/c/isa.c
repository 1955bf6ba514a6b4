/* Picks the instruction set at run time from the CPU's capabilities, once
 * (XNNPACK's hardware-config style): AVX-512 VNNI, AVX-VNNI, AVX2 (x86), else
 * the portable C path; on aarch64 NEON, and the dot product (SDOT) where
 * AT_HWCAP has HWCAP_ASIMDDP.  The paths are not a chain: a CPU may have AVX-512
 * VNNI without AVX-VNNI (Ice Lake, Cascade Lake) or AVX-VNNI without AVX-512
 * (Alder Lake), so each is checked on its own; both VNNI paths imply AVX2.
 * EDGE_MAAS_ISA is applied by the Python side through em_isa_set, so tests
 * can run every path in one process. */
#include "em_kernels.h"
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#include <asm/hwcap.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

static int current = -1;
static int supported_mask = -1;

static int detect(void) {
    int mask = 1 << EM_ISA_PORTABLE;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 state (XCR0) */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        mask |= 1 << EM_ISA_AVX2;
#ifdef EM_HAVE_AVXVNNI
        if (__builtin_cpu_supports("avxvnni")) mask |= 1 << EM_ISA_AVXVNNI;
#endif
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
            mask |= 1 << EM_ISA_AVX512VNNI;
    }
#endif
#if defined(__aarch64__) && defined(__linux__)
    /* NEON (Advanced SIMD) is in every aarch64 CPU; the dot product (SDOT, ARMv8.2 FEAT_DotProd) is optional
     * and announced by the kernel in AT_HWCAP */
    mask |= 1 << EM_ISA_NEON;
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) mask |= 1 << EM_ISA_DOTPROD;
#elif defined(__aarch64__)
    mask |= 1 << EM_ISA_NEON;
#endif
    return mask;
}

int em_isa_supported(int isa) {
    if (supported_mask < 0) supported_mask = detect();
    return isa >= 0 && isa < EM_ISA_COUNT && ((supported_mask >> isa) & 1);
}

/* The highest supported path at or below isa within its family (the order of the enum): x86 paths fall back
 * through the x86 ones, ARM paths through the ARM ones, and each family to portable, so asking for neon on x86
 * gives portable, never an x86 path. */
static int clamp(int isa) {
    if (isa >= EM_ISA_COUNT) isa = EM_ISA_COUNT - 1;
    const int floor = isa >= EM_ISA_NEON ? EM_ISA_NEON : EM_ISA_PORTABLE;
    while (isa > floor && !em_isa_supported(isa)) isa--;
    return em_isa_supported(isa) ? isa : EM_ISA_PORTABLE;
}

/* The highest path this CPU has, whichever family. */
int em_isa_best(void) {
    int isa = EM_ISA_COUNT - 1;
    while (isa > EM_ISA_PORTABLE && !em_isa_supported(isa)) isa--;
    return isa;
}

int em_isa_get(void) {
    if (current < 0) current = em_isa_best();
    return current;
}

int em_isa_set(int isa) {
    current = isa < 0 ? em_isa_best() : clamp(isa);
    return current;
}

int em_isa_has_vnni(int isa) { return isa == EM_ISA_AVXVNNI || isa == EM_ISA_AVX512VNNI; }
