/* ctors_dtors/second.c: more prioritised constructors and destructors. */
#include <kitlibc.h>

void record(int id);                    /* main.c */
extern int init_count;                  /* main.c */
extern int main_result;                 /* main.c */

const char *second_status = "not initialised";

__attribute__((constructor(200))) static void ctor_200(void)
{
    printf("ctor 200 (second.c), %d ran before\n", init_count);
    second_status = "initialised by ctor 200";
    record(200);
}

__attribute__((destructor(300))) static void dtor_300(void)
{
    printf("dtor 300 (second.c), main_result=%d\n", main_result);
}
