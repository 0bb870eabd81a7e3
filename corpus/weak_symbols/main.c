/* weak_symbols/main.c: weak undefined references and weak definitions. */
#include <kitlibc.h>

/* Weak undefined: defined nowhere, so their addresses are 0. */
extern int optional_hook(void) __attribute__((weak));
extern int optional_table[] __attribute__((weak));
extern long optional_counter __attribute__((weak));

/* Weak references to symbols that strong.c does define. */
extern int present_hook(int x) __attribute__((weak));
extern int present_data __attribute__((weak));

/* Weak definitions: strong.c overrides the first three. */
__attribute__((weak)) int config_value(void)
{
    return 1;
}

__attribute__((weak)) int tunable = 5;

__attribute__((weak)) const char *mode_name = "weak-default";

/* ... and these two keep their weak definition. */
__attribute__((weak)) int default_only(void)
{
    return 7;
}

__attribute__((weak)) int weak_kept = 11;

const char *strong_describe(void);      /* strong.c */

static int is_present(const void *addr)
{
    return addr != NULL;
}

int main(void)
{
    if (optional_hook)
        printf("optional_hook present: %d\n", optional_hook());
    else
        puts("optional_hook absent");
    if (is_present(optional_table))
        printf("optional_table present: %d\n", optional_table[0]);
    else
        puts("optional_table absent");
    printf("optional_counter %s\n", &optional_counter == NULL ? "absent" : "present");

    if (present_hook)
        printf("present_hook(20) = %d\n", present_hook(20));
    else
        puts("present_hook absent");
    if (&present_data != NULL)
        printf("present_data = %d\n", present_data);
    else
        puts("present_data absent");

    printf("config_value() = %d (strong override)\n", config_value());
    printf("tunable = %d (strong override)\n", tunable);
    printf("mode_name = %s\n", mode_name);
    printf("default_only() = %d (weak definition kept)\n", default_only());
    printf("weak_kept = %d (weak definition kept)\n", weak_kept);
    tunable += 100;
    printf("%s\n", strong_describe());
    return 0;
}
