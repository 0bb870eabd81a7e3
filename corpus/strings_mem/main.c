/* strings_mem: the host's mem* and str* functions, plus string handling
 * written in the program.  Comparison results are printed as signs only
 * (their magnitude is unspecified); bytes >= 0x80 compare as unsigned. */
#include <kitlibc.h>

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

static void show_bytes(const char *label, const unsigned char *p, size_t n)
{
    size_t i;
    printf("%s:", label);
    for (i = 0; i < n; i++)
        printf(" %02x", p[i]);
    putchar('\n');
}

static void reverse_in_place(char *s)
{
    size_t i, n = strlen(s);
    for (i = 0; i < n / 2; i++) {
        char t = s[i];
        s[i] = s[n - 1 - i];
        s[n - 1 - i] = t;
    }
}

static int count_char(const char *s, int c)
{
    int n = 0;
    while ((s = strchr(s, c)) != NULL) {
        n++;
        s++;
    }
    return n;
}

int main(void)
{
    char buf[64], copy[64];
    unsigned char bytes[16];
    const char *csv = "red,green,,blue";
    const char *p, *q;
    int i;

    /* memset / memcpy / memmove */
    memset(bytes, 0xAB, sizeof bytes);
    memset(bytes + 4, 0, 4);
    show_bytes("memset", bytes, sizeof bytes);
    for (i = 0; i < 16; i++)
        bytes[i] = (unsigned char)i;
    memmove(bytes + 2, bytes, 8);                 /* overlap, forwards */
    show_bytes("memmove up", bytes, sizeof bytes);
    memmove(bytes, bytes + 5, 10);                /* overlap, backwards */
    show_bytes("memmove down", bytes, sizeof bytes);
    memcpy(buf, "0123456789", 11);
    memcpy(copy, buf, strlen(buf) + 1);
    printf("memcpy: %s %s, returns dest: %s\n", buf, copy,
           (char *)memcpy(copy, "ab", 2) == copy ? "yes" : "no");
    printf("memmove returns dest: %s, memset returns dest: %s\n",
           memmove(buf, buf + 1, 3) == buf ? "yes" : "no",
           memset(buf + 8, '-', 2) == buf + 8 ? "yes" : "no");
    printf("buf now %s, copy now %s\n", buf, copy);

    /* memcmp: unsigned byte comparison */
    printf("memcmp: %d %d %d %d %d\n", sign(memcmp("abc", "abd", 3)),
           sign(memcmp("abc", "abd", 2)), sign(memcmp("b", "a", 1)),
           sign(memcmp("\x80", "\x01", 1)), sign(memcmp("x", "y", 0)));

    /* strlen / strcmp / strncmp */
    printf("strlen: %d %d %d\n", (int)strlen(""), (int)strlen("kitemu"),
           (int)strlen("with\0hidden"));
    printf("strcmp: %d %d %d %d %d\n", sign(strcmp("apple", "apple")),
           sign(strcmp("apple", "apricot")), sign(strcmp("pear", "peach")),
           sign(strcmp("abc", "abcd")), sign(strcmp("\xff", "a")));
    printf("strncmp: %d %d %d %d\n", sign(strncmp("apple", "apricot", 2)),
           sign(strncmp("apple", "apricot", 3)), sign(strncmp("abc", "abd", 0)),
           sign(strncmp("same", "same", 100)));

    /* strcpy / strchr */
    printf("strcpy returns dest: %s\n", strcpy(buf, "hello, world") == buf ? "yes" : "no");
    p = strchr(buf, 'o');
    q = strchr(buf, 'z');
    printf("strchr 'o' at %d, 'z' %s, '\\0' at %d, last 'o' ", (int)(p - buf),
           q == NULL ? "not found" : "found", (int)(strchr(buf, '\0') - buf));
    for (q = p; (p = strchr(p + 1, 'o')) != NULL; q = p)
        ;
    printf("at %d\n", (int)(q - buf));
    printf("count 'l' in \"%s\": %d\n", buf, count_char(buf, 'l'));

    /* splitting with strchr */
    printf("fields of \"%s\":", csv);
    for (p = csv;; p = q + 1) {
        q = strchr(p, ',');
        if (q == NULL) {
            printf(" [%s]\n", p);
            break;
        }
        printf(" [%.*s]", (int)(q - p), p);
    }

    /* building strings */
    strcpy(buf, "stressed");
    reverse_in_place(buf);
    printf("reversed: %s\n", buf);
    strcpy(copy, "kit");
    strcpy(copy + strlen(copy), "emu");
    for (i = 0; copy[i]; i++)
        if (copy[i] >= 'a' && copy[i] <= 'z')
            copy[i] = (char)(copy[i] - 'a' + 'A');
    printf("upper: %s\n", copy);

    assert(strlen(copy) == 6);
    assert(strcmp(copy, "KITEMU") == 0);
    assert(memcmp(copy, "KIT", 3) == 0 && strncmp(copy, "KITTEN", 3) == 0);
    puts("asserts passed");
    return 0;
}
