/* varargs: program-defined variadic functions reading ints, long longs,
 * doubles, strings and structs with va_arg, va_copy, and forwarding a
 * va_list to the host's vprintf and vsnprintf. */
#include <kitlibc.h>

struct pt {
    int x, y;
};

/* types: i=int l=long long d=double s=char* p=struct pt */
static double sum_typed(const char *types, ...)
{
    va_list ap;
    double total = 0;
    const char *t;
    va_start(ap, types);
    printf("sum_typed(\"%s\"):", types);
    for (t = types; *t; t++) {
        switch (*t) {
        case 'i': {
            int v = va_arg(ap, int);
            printf(" i%d", v);
            total += v;
            break;
        }
        case 'l': {
            long long v = va_arg(ap, long long);
            printf(" l%lld", v);
            total += (double)v;
            break;
        }
        case 'd': {
            double v = va_arg(ap, double);
            printf(" d%g", v);
            total += v;
            break;
        }
        case 's': {
            const char *v = va_arg(ap, const char *);
            printf(" s\"%s\"", v);
            total += (double)strlen(v);
            break;
        }
        case 'p': {
            struct pt v = va_arg(ap, struct pt);
            printf(" p(%d,%d)", v.x, v.y);
            total += v.x * v.y;
            break;
        }
        default:
            printf(" ?");
        }
    }
    va_end(ap);
    printf(" => %g\n", total);
    return total;
}

/* Zero-terminated list of ints, walked twice thanks to va_copy. */
static int average_of(int first, ...)
{
    va_list ap, again;
    int count = 0, sum = 0, v;
    va_start(ap, first);
    va_copy(again, ap);
    for (v = first; v != 0; v = va_arg(ap, int))
        count++;
    for (v = first; v != 0; v = va_arg(again, int))
        sum += v;
    va_end(again);
    va_end(ap);
    printf("average_of: count=%d sum=%d avg=%d\n", count, sum, count ? sum / count : 0);
    return count ? sum / count : 0;
}

/* Many variadic arguments: most of them are passed on the stack. */
static long long many(int n, ...)
{
    va_list ap;
    long long acc = 0;
    int i;
    va_start(ap, n);
    for (i = 0; i < n; i++) {
        long long v = i % 2 ? va_arg(ap, long long) : va_arg(ap, int);
        acc = acc * 3 + v;
    }
    va_end(ap);
    return acc;
}

static double many_doubles(int n, ...)
{
    va_list ap;
    double acc = 0;
    int i;
    va_start(ap, n);
    for (i = 0; i < n; i++) {
        double v = va_arg(ap, double);
        acc = acc * 2 + v;
    }
    va_end(ap);
    return acc;
}

/* Forwarding: a va_list handed to the host's vprintf ... */
static int log_count;

static int logmsg(const char *level, const char *fmt, ...) KIT_PRINTF(2, 3);
static int logmsg(const char *level, const char *fmt, ...)
{
    va_list ap;
    int n;
    printf("[%s #%d] ", level, ++log_count);
    va_start(ap, fmt);
    n = vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    return n;
}

/* ... and to vsnprintf, twice (measure, then format) via va_copy. */
static char *format_alloc(const char *fmt, ...) KIT_PRINTF(1, 2);
static char *format_alloc(const char *fmt, ...)
{
    va_list ap, ap2;
    int n;
    char *buf;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    buf = malloc((size_t)n + 1);
    if (buf != NULL)
        vsnprintf(buf, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return buf;
}

/* A va_list passed down to a helper that consumes part of it. */
static int take_two(va_list *ap)
{
    int a = va_arg(*ap, int);
    int b = va_arg(*ap, int);
    return a * b;
}

static int products(int pairs, ...)
{
    va_list ap;
    int i, total = 0;
    va_start(ap, pairs);
    for (i = 0; i < pairs; i++)
        total += take_two(&ap);
    va_end(ap);
    return total;
}

int main(void)
{
    struct pt p = { 6, 7 };
    char *s;
    float f = 2.5f;
    signed char sc = -5;
    short sh = 300;
    int n;

    sum_typed("idls", 7, 2.5, 10000000000LL, "hello");
    sum_typed("pdip", p, -0.125, -3, (struct pt){ -2, 5 });
    sum_typed("ddddddddddi", 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11);
    sum_typed("dii", (double)f, sc, sh);   /* promoted arguments */
    average_of(4, 8, 15, 16, 23, 42, 0);
    average_of(0);
    printf("many = %lld\n", many(14, 1, 2LL, 3, 4LL, 5, 6LL, 7, 8LL, 9, 10LL, 11,
                                 -12LL, 13, 4000000000LL));
    printf("many_doubles = %g\n", many_doubles(12, 1.0, 0.5, 0.25, 2.0, 1.5, 3.0,
                                               -1.0, 0.125, 8.0, 4.0, 2.0, 1.0));
    printf("products = %d\n", products(3, 2, 3, 4, 5, 6, 7));
    n = logmsg("info", "%d items, %s, %.2f%%", 12, "ok", 99.5);
    logmsg("warn", "vprintf returned %d; %lld %c %5s|", n, -1LL, 'x', "ab");
    logmsg("debug", "%e %x %-4d|", 1234.5, 255u, 7);
    s = format_alloc("%s-%04d-%.3f-%llu", "id", 42, 2.0 / 3.0, 18446744073709551615ULL);
    if (s != NULL) {
        printf("format_alloc: [%s] (%d chars)\n", s, (int)strlen(s));
        free(s);
    }
    return 0;
}
