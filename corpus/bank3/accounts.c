/* bank3/accounts.c: the account table and lookups. */
#include <kitlibc.h>

struct account {
    int id;
    const char *owner;
    long long balance;
};

struct account accounts[] = {
    { 101, "ada", 5000 },
    { 102, "brian", 12500 },
    { 103, "grace", 800 },
    { 104, "linus", 64000 },
    { 105, "margaret", 0 },
};
const int account_count = (int)(sizeof accounts / sizeof accounts[0]);
long long bank_reserve = 1000000;

static int lookups;

/* ledger.c has a static function with the same name. */
static int validate(int id)
{
    return id >= 101 && id <= 105;
}

int account_exists(int id)
{
    lookups++;
    return validate(id);
}

struct account *find_account(int id)
{
    int i;
    lookups++;
    for (i = 0; i < account_count; i++)
        if (accounts[i].id == id)
            return &accounts[i];
    return NULL;
}

int lookup_count(void)
{
    return lookups;
}
