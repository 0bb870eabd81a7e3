/* libfmt.a(trace.o): needed only by libmath.a(mul.o). */
#include <kitlibc.h>

void trace_op(const char *op, int result)
{
    printf("trace %s = %d\n", op, result);
}
