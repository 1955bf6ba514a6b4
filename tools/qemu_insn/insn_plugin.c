/* A qemu TCG plugin (API version 1, qemu 7.2's dynamically linked qemu-user): counts the guest instructions executed
 * between markers the guest program sets, so that a region (say, N inferences) is counted without the process's
 * start-up (importing Python packages is ~1e9 instructions; qemu's -d exec log of it is ~7 GB and takes minutes).
 *
 * Marker: the guest makes the system call MARKER_SYSCALL (not a Linux syscall: qemu-user answers ENOSYS, and so
 * does a native kernel, so the guest program runs unchanged outside the counter) with a1 = 1 to open a region and
 * a1 = 2 to close it.  At exit the plugin writes, per closed region, one line to the file named by out=PATH:
 *     region <i> insns <executed instructions> ymm <of which name a ymm register> zmm <of which a zmm register>
 * ymm / zmm come from the disassembly of each translated instruction (capstone, through qemu): they say which
 * vector width the code ran (e.g. that XNNPACK chose its AVX2 kernels on an AVX2-only CPU model).
 *
 * Counting: every translated block adds its instruction count when it starts executing (an inline add, no helper
 * call), so a block left early by an exception would count whole; the guests here (compute kernels) fault rarely.
 * Only the prototypes used are declared below (from qemu's include/qemu/qemu-plugin.h, API version 1) so that no
 * qemu headers are needed to build:  gcc -O2 -shared -fPIC insn_plugin.c -o libinsn_region.so */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARKER_SYSCALL 0x4d41 /* "MA": far above the highest Linux syscall number on x86_64 and aarch64 */
#define MAX_REGIONS 64

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
__attribute__((visibility("default"))) int qemu_plugin_version = 1;
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op, void *, uint64_t);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, unsigned int, int64_t,
                                          uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                                          uint64_t));
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, void *), void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *);

/* one counter set for all guest threads: the regions measured run single-threaded (threads=1), and the adds are
 * not atomic, so another thread busy at the same time could lose counts (it would not add any of its own work) */
static uint64_t insns, ymm, zmm;
static uint64_t start[3], got[MAX_REGIONS][3];
static int open_, n_regions;
static char out_path[4096];

static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb), ny = 0, nz = 0;
    for (size_t i = 0; i < n; i++) {
        char *d = qemu_plugin_insn_disas(qemu_plugin_tb_get_insn(tb, i));
        if (d) {
            ny += strstr(d, "ymm") != NULL;
            nz += strstr(d, "zmm") != NULL;
            free(d); /* g_free: glib allocates with the system malloc */
        }
    }
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns, n);
    if (ny) qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &ymm, ny);
    if (nz) qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &zmm, nz);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                       uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8) {
    (void)id, (void)vcpu, (void)a2, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8;
    if (num != MARKER_SYSCALL) return;
    if (a1 == 1) {
        start[0] = insns, start[1] = ymm, start[2] = zmm, open_ = 1;
    } else if (a1 == 2 && open_ && n_regions < MAX_REGIONS) {
        got[n_regions][0] = insns - start[0], got[n_regions][1] = ymm - start[1], got[n_regions][2] = zmm - start[2];
        n_regions++, open_ = 0;
    }
}

static void on_exit_(qemu_plugin_id_t id, void *p) {
    (void)id, (void)p;
    FILE *f = fopen(out_path, "w");
    if (!f) return;
    for (int i = 0; i < n_regions; i++)
        fprintf(f, "region %d insns %llu ymm %llu zmm %llu\n", i, (unsigned long long)got[i][0],
                (unsigned long long)got[i][1], (unsigned long long)got[i][2]);
    fprintf(f, "total insns %llu\n", (unsigned long long)insns);
    fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc,
                                                               char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "out=", 4)) snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
    if (!out_path[0]) {
        fprintf(stderr, "insn_plugin: needs out=PATH\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_, NULL);
    return 0;
}
