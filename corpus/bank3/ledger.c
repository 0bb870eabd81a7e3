/* bank3/ledger.c: applies a journal; its initialisers point into accounts.c. */
#include <kitlibc.h>

struct account {
    int id;
    const char *owner;
    long long balance;
};

struct txn {
    int from, to;               /* from == 0: paid by the bank's reserve */
    long long amount;
    const char *memo;
};

extern struct account accounts[];
extern long long bank_reserve;
int account_exists(int id);
struct account *find_account(int id);

/* Data initialised with addresses defined in another translation unit. */
long long *const reserve_ptr = &bank_reserve;
struct account *const first_account = &accounts[0];
int (*ledger_check)(int) = account_exists;

static const struct txn journal[] = {
    { 101, 102, 1500, "rent" },
    { 104, 103, 2000, "gift" },
    { 103, 999, 50, "bad target" },
    { 105, 101, 10, "overdraft" },
    { 102, 105, 700, "loan" },
    { 0, 104, 30000, "reserve grant" },
    { 101, 102, -5, "negative" },
};
static const int journal_len = (int)(sizeof journal / sizeof journal[0]);

int applied, rejected;
const char *last_error = "none";

/* accounts.c has a static function with the same name. */
static int validate(const struct txn *t)
{
    if (t->amount <= 0) {
        last_error = "bad amount";
        return 0;
    }
    if (!ledger_check(t->to)) {
        last_error = "unknown account";
        return 0;
    }
    if (t->from == 0) {
        if (*reserve_ptr < t->amount) {
            last_error = "reserve exhausted";
            return 0;
        }
        return 1;
    }
    if (!ledger_check(t->from)) {
        last_error = "unknown account";
        return 0;
    }
    if (find_account(t->from)->balance < t->amount) {
        last_error = "insufficient funds";
        return 0;
    }
    return 1;
}

int apply_journal(void)
{
    int i;
    for (i = 0; i < journal_len; i++) {
        const struct txn *t = &journal[i];
        if (!validate(t)) {
            rejected++;
            printf("  reject %-13s %s\n", t->memo, last_error);
            continue;
        }
        if (t->from == 0)
            *reserve_ptr -= t->amount;
        else
            find_account(t->from)->balance -= t->amount;
        find_account(t->to)->balance += t->amount;
        applied++;
        printf("  apply  %-13s %3d -> %d: %lld\n", t->memo, t->from, t->to, t->amount);
    }
    return applied;
}
