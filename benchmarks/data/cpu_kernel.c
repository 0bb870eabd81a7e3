/* CPU-bound kernel for the execution-overhead benchmark: no calls, no host
 * functions inside the loop, so kitemu and bare unicorn run the same bytes. */
#include <kitlibc.h>

unsigned long kernel(unsigned long n)
{
    unsigned long x = 0x9E3779B97F4A7C15ul, acc = 0;
    for (unsigned long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc += (x % 1000003u) ^ i;
    }
    return acc;
}

/* Memory-bound: pseudo-random loads and stores over a 64 KiB table. In an
 * emulator every guest memory access goes through a software TLB, so this is
 * where emulation costs most. */
static unsigned int table[16384];

unsigned long kernel_mem(unsigned long n)
{
    unsigned long acc = 0;
    unsigned int idx = 1;
    for (unsigned long i = 0; i < n; i++) {
        idx = idx * 1103515245u + 12345u;
        unsigned int slot = (idx >> 8) & 16383u;
        table[slot] += (unsigned int)i;
        acc += table[(slot * 7u) & 16383u];
    }
    return acc;
}

int main(void)
{
    printf("%lu %lu\n", kernel(1000000), kernel_mem(1000000));
    return 0;
}
