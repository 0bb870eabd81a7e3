/* ctors_dtors/main.c: constructors and destructors with and without
 * priorities, spread over two translation units.  Order:
 *   constructors: ascending priority (101, 200, 300), then the one
 *                 without priority;
 *   destructors (after main returns): the one without priority, then
 *                 descending priority (300, 250, 101).
 * Only one constructor and one destructor have no priority: the order among
 * equal priorities in different objects is link-order dependent. */
#include <kitlibc.h>

int init_trace[8];
int init_count;
int main_result;

void record(int id)
{
    init_trace[init_count++] = id;
}

__attribute__((constructor(101))) static void ctor_101(void)
{
    puts("ctor 101 (main.c)");
    record(101);
}

__attribute__((constructor(300))) static void ctor_300(void)
{
    printf("ctor 300 (main.c), %d ran before\n", init_count);
    record(300);
}

__attribute__((constructor)) static void ctor_default(void)
{
    puts("ctor default (main.c)");
    record(65535);
}

__attribute__((destructor)) static void dtor_default(void)
{
    printf("dtor default (main.c), main_result=%d\n", main_result);
}

__attribute__((destructor(250))) static void dtor_250(void)
{
    puts("dtor 250 (main.c)");
}

__attribute__((destructor(101))) static void dtor_101(void)
{
    puts("dtor 101 (main.c): last");
}

extern const char *second_status;       /* second.c */

int main(void)
{
    int i;
    printf("main: %d constructors ran:", init_count);
    for (i = 0; i < init_count; i++)
        printf(" %d", init_trace[i]);
    printf("\nmain: second.c says \"%s\"\n", second_status);
    main_result = init_count * 10;
    puts("main returns");
    return 0;
}
