/* retcode: main returns a computed nonzero status (the number of Collatz
 * steps of 27, which is 111). */
#include <kitlibc.h>

static int collatz_steps(unsigned long n, unsigned long *peak)
{
    int steps = 0;
    *peak = n;
    while (n != 1) {
        n = (n % 2 == 0) ? n / 2 : 3 * n + 1;
        if (n > *peak)
            *peak = n;
        steps++;
    }
    return steps;
}

int main(void)
{
    unsigned long peak, best_n = 1, best_peak = 0;
    int best = 0, steps;
    unsigned long n;

    for (n = 1; n < 1000; n++) {
        steps = collatz_steps(n, &peak);
        if (steps > best) {
            best = steps;
            best_n = n;
            best_peak = peak;
        }
    }
    printf("longest below 1000: n=%lu steps=%d peak=%lu\n", best_n, best, best_peak);
    steps = collatz_steps(27, &peak);
    printf("collatz(27): steps=%d peak=%lu\n", steps, peak);
    printf("returning %d from main\n", steps);
    return steps;
}
