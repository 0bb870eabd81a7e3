/* main.c - hit counters updated with atomic_add().
 *
 * The buggy build packs struct hit_stats, so `hits` sits at offset 1 and
 * atomic_add() gets a misaligned pointer.  -DFIXED drops the packing:
 * `hits` is at offset 8, naturally aligned. */
#include <kitlibc.h>
#include <stddef.h>

long atomic_add(long *p, long v);

#ifdef FIXED
#define PACKED
#else
#define PACKED __attribute__((packed)) /* BUG: hits lands at offset 1 */
#endif

struct PACKED hit_stats {
    unsigned char tag;
    long hits;
    long misses;
};

struct hit_stats stats = {'S', 0, 0};

int main(void) {
    long *hits = (long *)((char *)&stats + offsetof(struct hit_stats, hits));
    for (int i = 1; i <= 5; i++)
        atomic_add(hits, i);
    printf("%c hits: %ld misses: %ld\n", stats.tag, stats.hits, stats.misses);
    return 0;
}
