/* libdup.a(dup2.o): a second strong dup_fn. */
int dup_fn(void)
{
    return 2;
}

int dup2_extra(void)
{
    return 22;
}
