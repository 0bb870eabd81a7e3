/* big_bss: large zero-initialised arrays (> 1 MiB of .bss) touched at
 * both ends; checks that the loader really zero-fills them. */
#include <kitlibc.h>

#define BIG_BYTES (2u * 1024u * 1024u + 37u)    /* a little over 2 MiB */
#define COUNTERS 300000                         /* 1.2 MB of unsigned int */

unsigned char big_buffer[BIG_BYTES];            /* global .bss */
static unsigned int counters[COUNTERS];         /* static .bss */
long small_after;                               /* .bss after the big ones */
static int zeroed_int;

static unsigned long checksum_bytes(const unsigned char *p, unsigned long n,
                                    unsigned long stride)
{
    unsigned long i, sum = 0;
    for (i = 0; i < n; i += stride)
        sum = sum * 31u + p[i];
    return sum;
}

static unsigned long count_nonzero(const unsigned char *p, unsigned long n)
{
    unsigned long i, c = 0;
    for (i = 0; i < n; i++)
        c += p[i] != 0;
    return c;
}

int main(void)
{
    static unsigned char local_static[4096];    /* function-scope .bss */
    unsigned long i, nz;
    unsigned int sum = 0;

    nz = count_nonzero(big_buffer, BIG_BYTES);
    printf("big_buffer: %u bytes, nonzero before: %lu\n", BIG_BYTES, nz);
    printf("first=%d last=%d counters[0]=%u counters[end]=%u small_after=%ld zeroed_int=%d\n",
           big_buffer[0], big_buffer[BIG_BYTES - 1], counters[0],
           counters[COUNTERS - 1], small_after, zeroed_int);

    big_buffer[0] = 0xA5;
    big_buffer[BIG_BYTES - 1] = 0x5A;
    big_buffer[BIG_BYTES / 2] = 0x33;
    for (i = 0; i < BIG_BYTES; i += 4096)
        big_buffer[i + 1] = (unsigned char)(i >> 12);
    counters[0] = 1;
    counters[COUNTERS - 1] = 0xFFFFFFFFu;
    for (i = 1; i < COUNTERS - 1; i++)
        counters[i] = counters[i - 1] * 3u + (unsigned int)i;   /* wraps mod 2^32 */
    small_after = -123456789L;
    local_static[0] = 1;
    local_static[4095] = 2;

    for (i = 0; i < COUNTERS; i += 1000)
        sum ^= counters[i];
    printf("after: first=0x%02X last=0x%02X middle=0x%02X\n", big_buffer[0],
           big_buffer[BIG_BYTES - 1], big_buffer[BIG_BYTES / 2]);
    printf("nonzero after: %lu\n", count_nonzero(big_buffer, BIG_BYTES));
    printf("checksum(stride 4096+1): %lu\n",
           checksum_bytes(big_buffer + 1, BIG_BYTES - 1, 4096) % 1000000007ul);
    printf("counters: [1]=%u [2]=%u [end-1]=%u [end]=%u xor=%u\n", counters[1],
           counters[2], counters[COUNTERS - 2], counters[COUNTERS - 1], sum);
    printf("small_after=%ld local_static ends=%d,%d\n", small_after, local_static[0],
           local_static[4095]);
    return 0;
}
