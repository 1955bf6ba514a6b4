/* An x86-64 CPU without AVX-512 (and, for the avx2 profile, without AVX-VNNI), on this CPU, at its own speed.
 *
 * LD_PRELOAD'ed into a process, this turns on CPUID faulting (arch_prctl ARCH_SET_CPUID, 0; the CPU and kernel must
 * support it: "cpuid_fault" in /proc/cpuinfo): every CPUID the process executes from then on traps (SIGSEGV), and
 * the handler runs the real CPUID, clears the feature bits the profile hides and resumes after the instruction.
 * cpuinfo (XNNPACK's hardware config), numpy, OpenBLAS and libgcc's __builtin_cpu_supports (the native kernels'
 * dispatch) all read CPUID, so they all pick their code for the smaller CPU.  glibc read CPUID in ld.so before this
 * library ran: masked.py hides the same features from it with GLIBC_TUNABLES.
 *
 * Profiles (EDGE_MAAS_CPUID_MASK):
 *   avx2     no AVX-512 (F, DQ, IFMA, CD, BW, VL, VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ, FP16, BF16, ...), no AVX-VNNI:
 *            a Haswell-to-Comet-Lake class core as far as any feature check can tell;
 *   avxvnni  the same but AVX-VNNI kept (Alder Lake / Meteor Lake class: VEX vpdpbusd on ymm).
 * The execution units stay this CPU's: the comparison is at equal vector width, not a model of another core.
 *
 * At exit it writes EDGE_MAAS_CPUID_MASK_REPORT (a JSON object): the profile, how many CPUIDs it answered (and how
 * many of leaf 7), and whether any AVX-512 register state was used while it was active, from the kernel's
 * /proc/self/arch_status (AVX512_elapsed_ms: ms since a context switch last found AVX-512 state in use; a fresh
 * process inherits its parent's stamp, so the stamp is compared with the one read at start).
 *
 * Limits: a handler for SIGSEGV installed later replaces this one (Python's faulthandler: run without it); only
 * x86-64 Linux. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

enum { PROFILE_AVX2, PROFILE_AVXVNNI };

/* CPUID.(EAX=7, ECX=0): EBX, ECX, EDX bits of AVX-512 (Intel SDM vol. 2A, table 3-8) */
#define L7_EBX_AVX512 ((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31))
#define L7_ECX_AVX512 ((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14))
#define L7_EDX_AVX512 ((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23))
/* CPUID.(EAX=7, ECX=1): EAX bit 4 AVX-VNNI, bit 5 AVX512_BF16 */
#define L71_EAX_AVXVNNI (1u << 4)
#define L71_EAX_AVX512_BF16 (1u << 5)

static int profile = -1;
static volatile long answered, leaf7;
static double start_ms, stamp_at_start_ms;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* AVX512_elapsed_ms of this process (-1: never; -2: unreadable) */
static long avx512_elapsed_ms(void) {
    char buf[128] = {0};
    long v = -2;
    FILE *f = fopen("/proc/self/arch_status", "r");
    if (!f) return v;
    if (fread(buf, 1, sizeof buf - 1, f) > 0) {
        const char *p = strchr(buf, ':');
        if (p) v = strtol(p + 1, NULL, 10);
    }
    fclose(f);
    return v;
}

static void on_sigsegv(int sig, siginfo_t *si, void *ctx) {
    (void)si;
    ucontext_t *uc = ctx;
    greg_t *r = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) { /* a real fault: the default action on return (re-executed) */
        signal(sig, SIG_DFL);
        return;
    }
    const unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX];
    unsigned a, b, c, d;
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __cpuid_count(leaf, sub, a, b, c, d);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    if (leaf == 7 && sub == 0) {
        b &= ~L7_EBX_AVX512;
        c &= ~L7_ECX_AVX512;
        d &= ~L7_EDX_AVX512;
        leaf7++;
    } else if (leaf == 7 && sub == 1) {
        a &= ~(L71_EAX_AVX512_BF16 | (profile == PROFILE_AVX2 ? L71_EAX_AVXVNNI : 0));
    }
    r[REG_RAX] = a, r[REG_RBX] = b, r[REG_RCX] = c, r[REG_RDX] = d;
    r[REG_RIP] += 2;
    answered++;
}

__attribute__((constructor)) static void cpuid_mask_init(void) {
    const char *p = getenv("EDGE_MAAS_CPUID_MASK");
    if (!p || !*p) return;
    if (strcmp(p, "avx2") == 0) profile = PROFILE_AVX2;
    else if (strcmp(p, "avxvnni") == 0) profile = PROFILE_AVXVNNI;
    else {
        fprintf(stderr, "cpuid_mask: error: EDGE_MAAS_CPUID_MASK=%s: expected avx2 or avxvnni\n", p);
        _exit(2);
    }
    start_ms = now_ms();
    const long e = avx512_elapsed_ms();
    stamp_at_start_ms = e < 0 ? -1e18 : start_ms - e;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsegv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) || syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0)) {
        perror("cpuid_mask: error: CPUID faulting is not available here (arch_prctl ARCH_SET_CPUID)");
        _exit(2);
    }
}

__attribute__((destructor)) static void cpuid_mask_fini(void) {
    const char *path = getenv("EDGE_MAAS_CPUID_MASK_REPORT");
    if (profile < 0 || !path || !*path) return;
    const double t = now_ms();
    const long e = avx512_elapsed_ms();
    /* used since start: the kernel's stamp moved past the inherited one.  Both readings are whole jiffies (4 ms at
     * HZ=250) and the inherited stamp can be from the fork just before: 20 ms of slack, so a use in the first 20 ms
     * (the loader's, before any library chose its code) is not counted.  Unknown (null) without arch_status. */
    const char *used = e == -2 ? "null" : e >= 0 && (t - e) > stamp_at_start_ms + 20.0 ? "true" : "false";
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "{\"profile\": \"%s\", \"cpuid_answered\": %ld, \"leaf7\": %ld, \"avx512_elapsed_ms\": %ld, "
               "\"avx512_used\": %s, \"avx512_last_use_ms\": %.0f, \"seconds\": %.3f}\n",
            profile == PROFILE_AVX2 ? "avx2" : "avxvnni", answered, leaf7, e, used, e >= 0 ? (t - e) - start_ms : -1e9,
            (t - start_ms) / 1e3);
    fclose(f);
}
