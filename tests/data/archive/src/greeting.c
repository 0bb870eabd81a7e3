/* libprog.a(greeting.o); greeting_level is a weak definition (indexed
 * like a strong one when the index is built from the members). */
__attribute__((weak)) int greeting_level = 1;

const char *greeting(void)
{
    return greeting_level ? "hello from an archive" : "hello";
}
