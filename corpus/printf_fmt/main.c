/* printf_fmt: coverage of the printf family's conversions and flags.
 * Never prints addresses (%p would differ between runs and targets). */
#include <kitlibc.h>

static char logbuf[128];

/* A wrapper around vsprintf: formats into logbuf and returns the length. */
static int log_line(const char *fmt, ...) KIT_PRINTF(1, 2);
static int log_line(const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsprintf(logbuf, fmt, ap);
    va_end(ap);
    return n;
}

static void integers(void)
{
    int n = 42, neg = -17;
    unsigned int u = 3000000000u;
    long l = -1234567890123L;
    long long ll = 9007199254740993LL;
    unsigned long long ull = 18446744073709551615ULL;
    size_t sz = 123456;

    puts("-- integers");
    printf("[%d] [%i] [%u]\n", n, neg, u);
    printf("[%x] [%X] [%#x] [%#X]\n", 48879, 48879, 255, 255);
    printf("[%5d] [%-5d] [%05d] [%+d] [% d]\n", n, n, n, n, n);
    printf("[%+d] [% d] [%05d] [%-6d]\n", neg, neg, neg, neg);
    printf("[%.3d] [%8.4d] [%-8.4d|]\n", 7, 7, -7);
    printf("[%+5d] [%-+5d] [% 05d]\n", 3, 3, 3);
    printf("[%#08x] [%#-8x|] [%08X]\n", 0x1f, 0x1f, 0xabcu);
    printf("[%#x] [%#X] [%.0d|%.0x]\n", 0, 0, 0, 0u);
    printf("[%x] [%u]\n", (unsigned int)neg, (unsigned int)neg);
    printf("[%d] [%d]\n", 2147483647, -2147483647 - 1);
    printf("[%ld] [%lld] [%llu] [%llx] [%zu]\n", l, ll, ull, ull, sz);
    printf("[%lu] [%lx] [%#llX] [%lld]\n", 4000000000UL, 3735928559UL,
           0xABCDEF0123ULL, -9223372036854775807LL - 1);
    printf("[%*d] [%-*d] [%*d]\n", 6, n, 6, n, -4, n);
}

static void strings_and_chars(void)
{
    puts("-- strings and chars");
    printf("[%s] [%10s] [%-10s] [%.3s] [%8.2s]\n", "kit", "kit", "kit",
           "kitemu", "kitemu");
    printf("[%5s|%-5s|%5.1s]\n", "", "ab", "xyz");
    printf("[%c%c%c] [%3c] [%-3c]\n", 'a', 'b', 'c', 'z', 'z');
    printf("[%*s] [%-*s] [%.*s]\n", 5, "ab", 5, "ab", 2, "abcdef");
    printf("[%%] [100%%] [%5.1f%%]\n", 99.44);
}

static void floats(void)
{
    double d = 3.14159265358979;

    puts("-- floating point");
    printf("[%f] [%.2f] [%10.3f] [%-10.1f] [%+.1f] [%010.2f]\n", d, d, d, d, d, -d);
    printf("[%e] [%.2e] [%E] [%12.4e]\n", 12345.678, 0.000123, 1e100, -2.5);
    printf("[%g] [%g] [%g] [%g] [%.3g] [%#g] [%G]\n", 100000.0, 1000000.0,
           0.0001, 0.00001, 3.14159, 1.5, 1e-10);
    printf("[%.*f] [%*.*f] [% f]\n", 3, d, 9, 2, d, d);
    printf("[%#.0f] [%.0f] [%.0f] [%.0f]\n", 2.0, 2.5, 3.5, 0.4);
    printf("[%f] [%g] [%e]\n", 0.0, 0.0, 0.0);
    printf("[%f] [%g]\n", -0.0, -0.0);
    printf("[%.10f] [%.17g] [%.2f]\n", 0.1, 0.1, 1.005);
    printf("[%08.3f] [%+08.2f] [%-8.2f|]\n", 3.14159, 2.5, -2.5);
    printf("[%.0e] [%#.0e] [%+e]\n", 5e3, 5e3, 1.0);
    printf("[%g] [%g] [%g] [%g]\n", 123456789.0, 1.0 / 3.0, 2.0 / 3.0, 1e15);
    printf("[%g] [%g] [%.10g] [%G]\n", 0.5, 100.0, 1234567.0, 1.5e-7);
    printf("[%f] [%.3f] [%.1f]\n", 1e20, 123456789.0625, 0.05);
}

static void buffers(void)
{
    char buf[32];
    int r;

    puts("-- snprintf / sprintf / vsprintf");
    r = snprintf(buf, sizeof buf, "%s-%d", "value", 12345);
    printf("snprintf full: r=%d buf=[%s]\n", r, buf);
    r = snprintf(buf, 8, "%s", "truncate me please");
    printf("snprintf trunc: r=%d buf=[%s] len=%d\n", r, buf, (int)strlen(buf));
    memset(buf, 'x', sizeof buf);
    r = snprintf(buf, 1, "abc");
    printf("snprintf size 1: r=%d len=%d tail=%c\n", r, (int)strlen(buf), buf[1]);
    r = snprintf(NULL, 0, "%d/%d", 1000000, -5);
    printf("snprintf measure: r=%d\n", r);
    r = snprintf(buf, 6, "%05d", 123456);
    printf("snprintf digits: r=%d buf=[%s]\n", r, buf);
    r = sprintf(buf, "%c|%5.2f|%x", 'Q', 1.005, 255);
    printf("sprintf: r=%d buf=[%s]\n", r, buf);
    r = log_line("%s=%lld (%s)", "answer", 42LL, "vsprintf");
    printf("vsprintf: r=%d buf=[%s]\n", r, logbuf);
    r = printf("%s\n", "printf returns the count");
    printf("printf returned %d\n", r);
}

int main(void)
{
    integers();
    strings_and_chars();
    floats();
    buffers();
    return 0;
}
