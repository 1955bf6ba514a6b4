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
 *   avx2     no AVX-512 (F, DQ, IFMA, CD, BW, VL, VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ, FP16, BF16, ...), no AMX, no
 *            AVX10, no AVX-VNNI and none of its later kin (AVX-IFMA, AVX-VNNI-INT8/INT16, AVX-NE-CONVERT): a
 *            Haswell-to-Comet-Lake class core as far as any feature check can tell;
 *   avxvnni  the same but AVX-VNNI kept (Alder Lake / Meteor Lake class: VEX vpdpbusd on ymm);
 *   none     nothing hidden (the tests' control: the library's checks on an unmasked process).
 * The execution units stay this CPU's: the comparison is at equal vector width, not a model of another core.
 *
 * At exit each process writes EDGE_MAAS_CPUID_MASK_REPORT.<pid> (a JSON object; masked.py merges a command's
 * processes): the profile, how many CPUIDs it answered (and how many of leaf 7), and whether AVX-512 state was used
 * while it ran, by two best-effort signs: XINUSE (xgetbv ECX=1: the opmask, ZMM_Hi256 and Hi16_ZMM components
 * left out of their initial state; exact for this thread, though a vzeroupper returns ZMM_Hi256 to it) and the
 * kernel's /proc/self/arch_status (AVX512_elapsed_ms: ms since a context switch last found that state in use, for
 * the main thread; a fresh process inherits its parent's stamp, so it is compared with the one read at start).
 *
 * Limits: a SIGSEGV handler installed later replaces this one (Python's faulthandler: masked.py runs without it);
 * libraries the executable links directly initialize before a preload and see the real CPUID; other threads'
 * XINUSE is not read; only x86-64 Linux. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

enum { PROFILE_NONE, PROFILE_AVX2, PROFILE_AVXVNNI };
static const char *const NAMES[] = {"none", "avx2", "avxvnni"};

/* CPUID.(EAX=7, ECX=0) (Intel SDM vol. 2A, CPUID, table 3-8).  EBX: AVX512F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28,
 * BW 30, VL 31.  ECX: VBMI 1, VBMI2 6, VNNI 11, BITALG 12, VPOPCNTDQ 14.  EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8,
 * AMX-BF16 22, FP16 23, AMX-TILE 24, AMX-INT8 25. */
#define L7_EBX ((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31))
#define L7_ECX ((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14))
#define L7_EDX ((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25))
/* CPUID.(EAX=7, ECX=1).  EAX: AVX-VNNI 4, AVX512_BF16 5, AMX-FP16 21, AVX-IFMA 23.  EDX: AVX-VNNI-INT8 4,
 * AVX-NE-CONVERT 5, AVX-VNNI-INT16 10, AVX10 19. */
#define L71_EAX_AVXVNNI (1u << 4)
#define L71_EAX ((1u << 5) | (1u << 21) | (1u << 23))
#define L71_EDX ((1u << 4) | (1u << 5) | (1u << 10) | (1u << 19))
/* XCR1 (XINUSE) components of AVX-512: opmask 5, ZMM_Hi256 6, Hi16_ZMM 7 */
#define XINUSE_AVX512 0xE0u

static int profile = -1, xinuse_ok;
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

/* CPUID as the CPU answers it: from the handler (faulting off for the one instruction) or before faulting is on */
static void real_cpuid(unsigned leaf, unsigned sub, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
    __cpuid_count(leaf, sub, *a, *b, *c, *d);
}

static void die(const char *what) {
    static const char msg[] = "cpuid_mask: error: arch_prctl(ARCH_SET_CPUID) failed in the CPUID handler: ";
    if (write(2, msg, sizeof msg - 1) < 0 || write(2, what, strlen(what)) < 0) {}
    _exit(2);
}

static void on_sigsegv(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    greg_t *r = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    if (si->si_code <= 0 || ip[0] != 0x0f || ip[1] != 0xa2) {
        /* not a CPUID: a real fault re-executes into the default action; a SIGSEGV sent by kill / raise
         * (si_code <= 0) is delivered again with it */
        signal(sig, SIG_DFL);
        if (si->si_code <= 0) raise(sig);
        return;
    }
    const int saved = errno;
    const unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX];
    unsigned a, b, c, d;
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1)) die("enable\n");
    real_cpuid(leaf, sub, &a, &b, &c, &d);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0)) die("disable\n");
    if (profile != PROFILE_NONE) {
        if (leaf == 7 && sub == 0) {
            b &= ~L7_EBX, c &= ~L7_ECX, d &= ~L7_EDX;
        } else if (leaf == 7 && sub == 1) {
            a &= ~(L71_EAX | (profile == PROFILE_AVX2 ? L71_EAX_AVXVNNI : 0));
            d &= ~L71_EDX;
        } else if (leaf == 0x24) { /* AVX10's own leaf */
            a = b = c = d = 0;
        }
    }
    if (leaf == 7 && sub == 0) leaf7++;
    r[REG_RAX] = a, r[REG_RBX] = b, r[REG_RCX] = c, r[REG_RDX] = d;
    r[REG_RIP] += 2;
    answered++;
    errno = saved;
}

static unsigned xinuse(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(1));
    return lo;
}

__attribute__((constructor)) static void cpuid_mask_init(void) {
    const char *p = getenv("EDGE_MAAS_CPUID_MASK");
    if (!p || !*p) return;
    for (int i = 0; i < 3; i++)
        if (strcmp(p, NAMES[i]) == 0) profile = i;
    if (profile < 0) {
        fprintf(stderr, "cpuid_mask: error: EDGE_MAAS_CPUID_MASK=%s: expected avx2, avxvnni or none\n", p);
        _exit(2);
    }
    unsigned a, b, c, d;
    real_cpuid(0xD, 1, &a, &b, &c, &d);
    xinuse_ok = (a >> 2) & 1; /* XGETBV with ECX = 1 */
    start_ms = now_ms();
    const long e = avx512_elapsed_ms();
    stamp_at_start_ms = e < 0 ? -1e18 : start_ms - e;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsegv;
    sa.sa_flags = SA_SIGINFO;
    sigfillset(&sa.sa_mask); /* no other handler runs (and reads CPUID) while faulting is off */
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
    const unsigned in_use = xinuse_ok ? xinuse() & XINUSE_AVX512 : 0;
    /* arch_status: the kernel's stamp moved past the inherited one.  Both readings are whole jiffies (4 ms at
     * HZ=250) and the inherited stamp can be from the fork just before: 20 ms of slack, so a use in the first 20 ms
     * (the loader's, before any library chose its code) is not counted. */
    const int stamped = e >= 0 && (t - e) > stamp_at_start_ms + 20.0;
    const char *used = in_use || stamped ? "true" : (xinuse_ok || e != -2) ? "false" : "null";
    char name[4096];
    snprintf(name, sizeof name, "%s.%ld", path, (long)getpid());
    FILE *f = fopen(name, "w");
    if (!f) return;
    fprintf(f, "{\"profile\": \"%s\", \"pid\": %ld, \"cpuid_answered\": %ld, \"leaf7\": %ld, \"xinuse_avx512\": %u, "
               "\"avx512_elapsed_ms\": %ld, \"avx512_used\": %s, \"seconds\": %.3f}\n",
            NAMES[profile], (long)getpid(), answered, leaf7, in_use, e, used, (t - start_ms) / 1e3);
    fclose(f);
}
