/* main.c - an -O2 program whose inline-asm routine stores through an
 * address formed by a relocation to the wrong symbol.
 *
 * record_sample(slot, v) adds v to sample_totals[slot] with hand-written
 * ADRP/ADD (ARM64_RELOC_PAGE21 + ARM64_RELOC_PAGEOFF12 against TOTALS),
 * LDR, ADD, STR.  The buggy build names _sample_limits, the read-only table
 * of calib.c: the STR hits a mapped r-- page -> SIGBUS BUS_ADRERR ("Bus
 * error") on macOS, SIGSEGV SEGV_ACCERR on Linux.  -DFIXED names
 * _sample_totals, the writable table.  -DPADDED adds code and data that
 * have nothing to do with the crash (for `kitemu repro --minimize`).
 */
#include <kitlibc.h>

extern long sample_totals[4];
long scaled_limit(int i);

#ifdef FIXED
#define TOTALS "_sample_totals" /* the writable running totals (__DATA) */
#else
#define TOTALS "_sample_limits" /* BUG: the read-only limits (__TEXT,__const) */
#endif

__attribute__((noinline)) void record_sample(long slot, long v) {
    long tmp;
    __asm__ volatile("adrp x9, " TOTALS "@PAGE\n\t"
                     "add  x9, x9, " TOTALS "@PAGEOFF\n\t"
                     "ldr  %0, [x9, %1, lsl #3]\n\t"
                     "add  %0, %0, %2\n\t"
                     "str  %0, [x9, %1, lsl #3]"
                     : "=&r"(tmp)
                     : "r"(slot), "r"(v)
                     : "x9", "memory");
}

#ifdef PADDED
void banner(const char *who);   /* libnoise.a(fmt.o) */
long noise_mix(long seed);      /* noise.o */

static const char *const names[] = {"alpha", "beta", "gamma"};
long padding_state[8];

__attribute__((noinline)) long unused_fold(long a, long b) {
    long acc = 0;
    for (long i = 0; i < a; i++)
        acc = acc * 31 + (b ^ i);
    return acc;
}

__attribute__((noinline)) void fill_padding(long seed) {
    for (int i = 0; i < 8; i++)
        padding_state[i] = seed + i * 3;
}
#endif

int main(void) {
#ifdef PADDED
    banner(names[1]);
    fill_padding(noise_mix(7));
    printf("padding %ld\n", padding_state[7]);
#endif
    for (int i = 0; i < 4; i++)
        record_sample(i, scaled_limit(i));
    printf("totals: %ld %ld %ld %ld\n", sample_totals[0], sample_totals[1], sample_totals[2],
           sample_totals[3]);
    return 0;
}
