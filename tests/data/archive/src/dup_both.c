/* dup_both.c: needs dup1_extra and dup2_extra, so both libdup.a members
 * are pulled, and both define dup_fn strongly: a duplicate symbol. */
int dup_fn(void);
int dup1_extra(void);
int dup2_extra(void);

int main(void)
{
    return dup1_extra() + dup2_extra() + dup_fn();
}
