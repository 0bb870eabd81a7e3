/* libmath.a(unused_member_long_name.o): nobody needs unused_fn; the name is
 * longer than 15 characters (GNU '//' table, BSD '#1/N'). */
int never_defined_either(void);

int unused_fn(void)
{
    return never_defined_either();
}
