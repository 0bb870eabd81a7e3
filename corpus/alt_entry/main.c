/* alt_entry: the program's entry is not main.  kitemu runs it with
 * `-e start` (case.json "entry"); main exists too, and running it instead
 * would print a different line and exit 1.  start receives argc/argv like
 * main and its return value is the exit status. */
#include <kitlibc.h>

static int calls;

static int count_chars(const char *s)
{
    int n = 0;
    while (s[n])
        n++;
    return n;
}

int main(int argc, char **argv)
{
    (void)argv;
    printf("main was called with %d arguments: wrong entry\n", argc);
    return 1;
}

int start(int argc, char **argv)
{
    int total = 0;
    calls++;
    printf("start was called (%d call) with %d arguments\n", calls, argc - 1);
    for (int i = 1; i < argc; i++) {
        int n = count_chars(argv[i]);
        printf("  argv[%d] = \"%s\" (%d chars)\n", i, argv[i], n);
        total += n;
    }
    printf("total %d chars\n", total);
    return total % 256 == 0 ? 0 : 5;
}
