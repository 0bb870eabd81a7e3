/* libmath.a(hook.o): main.o refers to optional_hook weakly only, so this
 * member is never pulled (if it were, never_defined would be undefined). */
int never_defined(void);

int optional_hook(void)
{
    return never_defined();
}
