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

int main(void)
{
    printf("%lu\n", kernel(1000000));
    return 0;
}
