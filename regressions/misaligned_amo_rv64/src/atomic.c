/* atomic.c - atomic_add(p, v): *p += v atomically, returns the old value.
 * One AMOADD.D: RISC-V AMOs (and LR/SC) need a naturally aligned address;
 * a misaligned one raises a misaligned-access exception -> SIGBUS
 * BUS_ADRALN (Linux and macOS alike). */
long atomic_add(long *p, long v) {
    long old;
    __asm__ volatile("amoadd.d %0, %2, (%1)" : "=r"(old) : "r"(p), "r"(v) : "memory");
    return old;
}
