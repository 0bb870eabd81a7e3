/* libfmt.a(fmt_report.o): needs mul (libmath.a). */
#include <kitlibc.h>

int mul(int a, int b);

int report(int a, int b)
{
    int r = mul(a, b);
    printf("report %d*%d\n", a, b);
    return r;
}
