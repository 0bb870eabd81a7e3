/* weak_symbols/strong.c: strong definitions that win over weak ones. */
#include <kitlibc.h>

int config_value(void)
{
    return 42;
}

int tunable = 99;
const char *mode_name = "strong";

int present_hook(int x)
{
    return x * 3 + 1;
}

int present_data = 2024;

extern int weak_kept;                   /* weak definition in main.c */

static char describe_buf[64];

const char *strong_describe(void)
{
    snprintf(describe_buf, sizeof describe_buf, "strong.c sees tunable=%d weak_kept=%d",
             tunable, weak_kept);
    return describe_buf;
}
