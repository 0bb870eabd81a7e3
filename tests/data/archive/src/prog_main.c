/* libprog.a(prog_main.o): main itself lives in the archive (pulled as the
 * entry root); the archive has no symbol table. */
#include <kitlibc.h>

const char *greeting(void);

int main(int argc, char **argv)
{
    (void)argv;
    puts(greeting());
    return argc + 40;
}
