#include <kitlibc.h>

int answer(void);
void set_answer(int value);

int main(void) {
    set_answer(42);
    int a = answer();
    printf("answer() = %d after patching\n", a);
    return a == 42 ? 0 : 1;
}
