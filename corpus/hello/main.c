/* hello: string literals, puts, putchar and a first printf. */
#include <kitlibc.h>

static const char greeting[] = "Hello, kitemu!";
const char *farewell = "Goodbye.";

static void underline(const char *s)
{
    size_t i;
    for (i = 0; s[i] != '\0'; i++)
        putchar('=');
    putchar('\n');
}

int main(void)
{
    const char *words[] = { "alpha", "beta", "gamma" };
    int i;

    puts(greeting);
    underline(greeting);
    printf("%s has %d characters\n", greeting, (int)strlen(greeting));
    for (i = 0; i < 3; i++)
        printf("word %d: %s\n", i, words[i]);
    putchar('A');
    putchar('B');
    putchar('C');
    putchar('\n');
    puts("");
    printf("escapes: tab[\t] quote[\"] backslash[\\] octal[\101\102]\n");
    puts("utf8: caf\xc3\xa9 \xe2\x9c\x93");
    printf("%s\n", "literal passed as an argument");
    puts(farewell);
    return 0;
}
