/* inventory/main.c: two translation units sharing code and data. */
#include <kitlibc.h>

struct item {
    const char *name;
    int qty;
    int price_cents;
};

extern struct item items[];         /* items.c */
extern int item_count;              /* items.c */
extern int total_updates;           /* items.c (.bss) */
int restock(int idx, int amount);
long inventory_value(void);
const char *item_name(int idx);
int history_entry(int back);

int audit_level = 2;                /* read by items.c */

/* Same names as statics in items.c. */
static int history[4] = { -1, -1, -1, -1 };
static int nhistory;

static int clamp(int v)
{
    return v < 0 ? 0 : v;
}

static void show(const char *title)
{
    int i;
    printf("%s\n", title);
    for (i = 0; i < item_count; i++)
        printf("  %-8s qty=%3d price=%4d\n", items[i].name, items[i].qty,
               items[i].price_cents);
    printf("  value=%ld cents, updates=%d\n", inventory_value(), total_updates);
}

int main(void)
{
    static const int plan[][2] = { { 0, 30 }, { 3, -20 }, { 2, 1000 }, { 1, -45 } };
    int i;

    show("initial stock:");
    for (i = 0; i < 4; i++) {
        int q = restock(plan[i][0], plan[i][1]);
        history[nhistory++] = clamp(plan[i][1]);
        printf("restock %s by %d -> %d\n", item_name(plan[i][0]), plan[i][1], q);
    }
    items[1].price_cents += 2;      /* write another TU's data directly */
    show("after restocking:");
    audit_level = 0;
    restock(0, 1);
    printf("items.c history:");
    for (i = 0; i < 5; i++)
        printf(" %d", history_entry(i));
    printf("\nmain.c history:");
    for (i = 0; i < 4; i++)
        printf(" %d", history[i]);
    printf("\ntotal updates: %d\n", total_updates);
    return 0;
}
