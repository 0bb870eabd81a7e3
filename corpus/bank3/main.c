/* bank3/main.c: three translation units sharing code and data. */
#include <kitlibc.h>

struct account {
    int id;
    const char *owner;
    long long balance;
};

extern struct account accounts[];               /* accounts.c */
extern const int account_count;                 /* accounts.c */
extern long long bank_reserve;                  /* accounts.c */
extern long long *const reserve_ptr;            /* ledger.c */
extern struct account *const first_account;     /* ledger.c */
extern int (*ledger_check)(int);                /* ledger.c */
extern int applied, rejected;                   /* ledger.c */
extern const char *last_error;                  /* ledger.c */
int apply_journal(void);                        /* ledger.c */
int lookup_count(void);                         /* accounts.c */
int account_exists(int id);                     /* accounts.c */

/* Initialisers pointing into other translation units' data. */
struct account *vip = &accounts[3];
long long *vip_balance = &accounts[3].balance;
const char **error_slot = &last_error;
static const char *const columns[] = { "id", "owner", "balance" };

static void show(const char *title)
{
    long long total = 0;
    int i;
    printf("%s\n", title);
    for (i = 0; i < account_count; i++) {
        printf("  %d %-9s %7lld\n", accounts[i].id, accounts[i].owner,
               accounts[i].balance);
        total += accounts[i].balance;
    }
    printf("  total=%lld reserve=%lld sum=%lld\n", total, *reserve_ptr,
           total + bank_reserve);
}

int main(void)
{
    int n, i;

    printf("columns:");
    for (i = 0; i < 3; i++)
        printf(" %s", columns[i]);
    putchar('\n');
    show("before:");
    n = apply_journal();
    printf("journal: %d applied, %d rejected (applied=%d)\n", n, rejected, applied);
    printf("first account: %s; vip: %s with %lld\n", first_account->owner,
           vip->owner, *vip_balance);
    printf("last error: %s\n", *error_slot);
    *vip_balance += 1;
    printf("vip balance through accounts[]: %lld\n", accounts[3].balance);
    printf("ledger_check is account_exists: %s\n",
           ledger_check == account_exists ? "yes" : "no");
    show("after:");
    printf("lookups: %d\n", lookup_count());
    return 0;
}
