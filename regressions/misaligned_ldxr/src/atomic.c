/* atomic.c - atomic_add(p, v): *p += v atomically, returns the old value.
 * A hand-written LL/SC loop: LDXR/STXR need a naturally aligned address;
 * a misaligned one raises an alignment fault -> SIGBUS BUS_ADRALN (Linux
 * and macOS alike). */
long atomic_add(long *p, long v) {
    long old, sum;
    unsigned fail;
    __asm__ volatile("1: ldxr  %0, [%3]\n\t"
                     "   add   %1, %0, %4\n\t"
                     "   stxr  %w2, %1, [%3]\n\t"
                     "   cbnz  %w2, 1b"
                     : "=&r"(old), "=&r"(sum), "=&r"(fail)
                     : "r"(p), "r"(v)
                     : "memory");
    return old;
}
