/* jit.c - guest helpers of a JIT whose host side is the case's scenario:
 * the JIT commits a new code chunk (gen1), writes `mov x0, #42; ret` into
 * it, checks the bytes with code_checksum() and runs them with
 * run_generated().
 *
 * Under jit-toggle (Apple silicon MAP_JIT + pthread_jit_write_protect_np)
 * the write permission is per *thread* and covers *all* JIT memory: while
 * gen1 is open for writing, this file's own code (linked and finalized
 * before) is RW too.  The buggy scenario calls code_checksum() before
 * finalizing gen1: fetching its first instruction faults -> SIGBUS
 * BUS_ADRERR on macOS.  mprotect and dual-map only open gen1 itself, so
 * they run it clean.  The fixed scenario finalizes gen1 first.
 */
#include <kitlibc.h>

unsigned long code_checksum(const unsigned char *p, long n) {
    unsigned long h = 0xcbf29ce484222325UL; /* FNV-1a */
    for (long i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3UL;
    }
    printf("checksum of %ld code bytes: %lx\n", n, h);
    return h;
}

int run_generated(int (*fn)(void)) {
    int v = fn();
    printf("generated code returned %d\n", v);
    return v == 42 ? 0 : 1;
}
