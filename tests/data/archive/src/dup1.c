/* libdup.a(dup1.o): defines dup_fn, as dup2.o does. */
int dup_fn(void)
{
    return 1;
}

int dup1_extra(void)
{
    return 11;
}
