/* recursion: ackermann, fibonacci, towers of hanoi, mutual recursion,
 * a recursive-descent expression evaluator and permutations. */
#include <kitlibc.h>

static int ackermann(int m, int n)
{
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ackermann(m - 1, 1);
    return ackermann(m - 1, ackermann(m, n - 1));
}

static long fib(int n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static int hanoi_moves;

static void hanoi(int n, char from, char to, char via, int verbose)
{
    if (n == 0)
        return;
    hanoi(n - 1, from, via, to, verbose);
    hanoi_moves++;
    if (verbose)
        printf("  disk %d: %c -> %c\n", n, from, to);
    hanoi(n - 1, via, to, from, verbose);
}

static int is_odd(unsigned int n);

static int is_even(unsigned int n)
{
    return n == 0 ? 1 : is_odd(n - 1);
}

static int is_odd(unsigned int n)
{
    return n == 0 ? 0 : is_even(n - 1);
}

/* expr   := term (('+'|'-') term)*
 * term   := factor (('*'|'/'|'%') factor)*
 * factor := '-' factor | number | '(' expr ')' */
struct parser {
    const char *p;
    int error;
};

static long parse_expr(struct parser *ps);

static void skip_spaces(struct parser *ps)
{
    while (*ps->p == ' ')
        ps->p++;
}

static long parse_factor(struct parser *ps)
{
    long v = 0;
    skip_spaces(ps);
    if (*ps->p == '-') {
        ps->p++;
        return -parse_factor(ps);
    }
    if (*ps->p == '(') {
        ps->p++;
        v = parse_expr(ps);
        skip_spaces(ps);
        if (*ps->p != ')')
            ps->error = 1;
        else
            ps->p++;
        return v;
    }
    if (*ps->p < '0' || *ps->p > '9') {
        ps->error = 1;
        return 0;
    }
    while (*ps->p >= '0' && *ps->p <= '9')
        v = v * 10 + (*ps->p++ - '0');
    return v;
}

static long parse_term(struct parser *ps)
{
    long v = parse_factor(ps);
    for (;;) {
        char op;
        long rhs;
        skip_spaces(ps);
        op = *ps->p;
        if (op != '*' && op != '/' && op != '%')
            return v;
        ps->p++;
        rhs = parse_factor(ps);
        if (op == '*')
            v *= rhs;
        else if (rhs == 0)
            ps->error = 1;
        else if (op == '/')
            v /= rhs;
        else
            v %= rhs;
    }
}

static long parse_expr(struct parser *ps)
{
    long v = parse_term(ps);
    for (;;) {
        char op;
        skip_spaces(ps);
        op = *ps->p;
        if (op != '+' && op != '-')
            return v;
        ps->p++;
        if (op == '+')
            v += parse_term(ps);
        else
            v -= parse_term(ps);
    }
}

static void eval(const char *text)
{
    struct parser ps = { text, 0 };
    long v = parse_expr(&ps);
    skip_spaces(&ps);
    if (ps.error || *ps.p != '\0')
        printf("%-24s => error at offset %d\n", text, (int)(ps.p - text));
    else
        printf("%-24s => %ld\n", text, v);
}

static int permutations;

static void permute(char *s, int k, int n)
{
    int i;
    if (k == n) {
        if (permutations < 6)
            printf("%s%c", s, permutations == 5 ? '\n' : ' ');
        permutations++;
        return;
    }
    for (i = k; i < n; i++) {
        char t = s[k];
        s[k] = s[i];
        s[i] = t;
        permute(s, k + 1, n);
        t = s[k];
        s[k] = s[i];
        s[i] = t;
    }
}

static unsigned long long gcd(unsigned long long a, unsigned long long b)
{
    return b == 0 ? a : gcd(b, a % b);
}

int main(void)
{
    char letters[] = "abcde";
    int m, n;

    for (m = 0; m <= 2; m++)
        for (n = 0; n <= 3; n++)
            printf("A(%d,%d)=%d%c", m, n, ackermann(m, n), n == 3 ? '\n' : ' ');
    printf("A(3,3)=%d\n", ackermann(3, 3));
    printf("fib(0..15):");
    for (n = 0; n <= 15; n++)
        printf(" %ld", fib(n));
    printf("\nfib(25)=%ld\n", fib(25));
    puts("hanoi(3):");
    hanoi(3, 'A', 'C', 'B', 1);
    hanoi_moves = 0;
    hanoi(12, 'A', 'C', 'B', 0);
    printf("hanoi(12) moves: %d\n", hanoi_moves);
    printf("is_even(1000)=%d is_odd(777)=%d is_even(31)=%d\n", is_even(1000),
           is_odd(777), is_even(31));
    eval("1 + 2 * 3");
    eval("(1 + 2) * 3");
    eval("2 * (3 + 4) - 10 / 5");
    eval("-(7 - 20) % 5 + -3");
    eval("((((((42))))))");
    eval("100 / (5 - 5)");
    eval("3 + * 4");
    permute(letters, 0, 5);
    printf("permutations of %s: %d\n", letters, permutations);
    printf("gcd(1071, 462)=%llu gcd(2^40, 6^15)=%llu\n", gcd(1071, 462),
           gcd(1ULL << 40, 470184984576ULL));
    return 0;
}
