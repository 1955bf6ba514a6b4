/* Test memory for the C harnesses: n bytes ending exactly at a PROT_NONE page, so a kernel that reads past its
 * input faults instead of reading a neighbour's bytes.  Free with munmap(*map, *len). */
#ifndef EM_TEST_GUARDED_H
#define EM_TEST_GUARDED_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int8_t *guarded(size_t n, void **map, size_t *len) {
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE), body = (n + pg - 1) / pg * pg;
    *len = body + pg;
    char *p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(2); }
    mprotect(p + body, pg, PROT_NONE);
    *map = p;
    return (int8_t *)(p + body - n);
}
#endif
