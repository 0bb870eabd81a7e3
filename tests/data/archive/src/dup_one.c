/* dup_one.c: needs dup_fn only: libdup.a's first member (dup1.o) provides
 * it, dup2.o stays out, no duplicate. */
#include <kitlibc.h>

int dup_fn(void);

int main(void)
{
    printf("dup_fn: %d\n", dup_fn());
    return 0;
}
