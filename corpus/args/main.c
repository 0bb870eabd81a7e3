/* args: reads argc and argv (argv[1..] come from case.json; argv[0] is
 * never printed because it differs between runners). */
#include <kitlibc.h>
#include <stdbool.h>

static bool parse_int(const char *s, long *out)
{
    long v = 0;
    bool neg = false;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
    }
    *out = neg ? -v : v;
    return true;
}

int main(int argc, char **argv)
{
    long sum = 0, v;
    int i, numbers = 0;
    const char *longest = "";

    printf("argc = %d\n", argc);
    printf("argv[0] is %s\n", argv[0] != NULL ? "present" : "missing");
    printf("argv[argc] is %s\n", argv[argc] == NULL ? "NULL" : "not NULL");
    for (i = 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        printf("argv[%d] = \"%s\" (length %d)", i, argv[i], (int)strlen(argv[i]));
        if (parse_int(argv[i], &v)) {
            printf(" number %ld", v);
            sum += v;
            numbers++;
        }
        if (eq != NULL)
            printf(" key=%.*s value=%s", (int)(eq - argv[i]), argv[i], eq + 1);
        putchar('\n');
        if (strlen(argv[i]) > strlen(longest))
            longest = argv[i];
    }
    printf("%d numbers, sum %ld, longest \"%s\"\n", numbers, sum, longest);
    /* arguments are writable */
    if (argc > 1 && argv[1][0] != '\0') {
        argv[1][0] = (char)(argv[1][0] - 'a' + 'A');
        printf("modified argv[1] = %s\n", argv[1]);
    }
    return 0;
}
