/* noise.c - padding: an object unrelated to the crash (for --minimize) */
#include <kitlibc.h>

long noise_table[16] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};

long noise_mix(long seed) {
    long h = seed;
    for (int i = 0; i < 16; i++)
        h = h * 33 + noise_table[i];
    return h & 0xffff;
}

long noise_unused(long x) { return noise_mix(x) ^ 0x5a5a; }
