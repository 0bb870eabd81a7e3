/* main.c: the command-line object of the archive program.  It needs
 * report() (libfmt.a), which needs mul() (libmath.a), which needs
 * add_helper() (libmath.a) and trace_op() (libfmt.a): every archive needs
 * the other one, and add_helper/trace_op are needed only by members. */
#include <kitlibc.h>

int report(int a, int b);                               /* libfmt.a(fmt_report.o) */
extern int optional_hook(void) __attribute__((weak));   /* libmath.a(hook.o): weak, not pulled */
extern int extra_value;                                 /* extra.o */
int shared_counter __attribute__((common));             /* COMMON; libmath.a(counter.o) = 42 */

int main(void)
{
    const char *volatile text = "abcd";
    printf("report: %d\n", report(6, 7));
    printf("hook: %s\n", optional_hook ? "linked" : "absent");
    printf("counter: %d\n", shared_counter);
    printf("strlen: %d\n", (int)strlen(text));       /* host; libmath.a(strlen.o) says 999 */
    printf("extra: %d\n", extra_value);
    return 3;
}
