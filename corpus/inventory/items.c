/* inventory/items.c: owns the item table; uses audit_level from main.c. */
#include <kitlibc.h>

struct item {
    const char *name;
    int qty;
    int price_cents;
};

struct item items[] = {
    { "bolt", 120, 15 },
    { "nut", 300, 7 },
    { "washer", 75, 3 },
    { "gear", 12, 250 },
};
int item_count = (int)(sizeof items / sizeof items[0]);
int total_updates;                  /* .bss, read by main.c */

extern int audit_level;             /* defined in main.c */

/* Same names as statics in main.c: they must stay separate. */
static int history[8];
static int nhistory;

static int clamp(int v, int lo, int hi)
{
    if (v < lo)
        return lo;
    if (v > hi)
        return hi;
    return v;
}

int restock(int idx, int amount)
{
    struct item *it = &items[idx];
    it->qty = clamp(it->qty + amount, 0, 500);
    total_updates++;
    if (audit_level > 1)
        history[nhistory++ % 8] = idx * 1000 + it->qty;
    return it->qty;
}

long inventory_value(void)
{
    long sum = 0;
    int i;
    for (i = 0; i < item_count; i++)
        sum += (long)items[i].qty * items[i].price_cents;
    return sum;
}

const char *item_name(int idx)
{
    return items[idx].name;
}

int history_entry(int back)
{
    if (back >= nhistory || back >= 8)
        return -1;
    return history[(nhistory - 1 - back) % 8];
}
