/* exit_nested: exit(3) called from deep inside nested calls; main never
 * returns, yet the destructor still runs and its output appears. */
#include <kitlibc.h>

static int depth_reached;
static const char *stage = "start";

__attribute__((destructor)) static void farewell(void)
{
    printf("destructor: stage=%s depth=%d\n", stage, depth_reached);
}

static int search(int depth, int target)
{
    depth_reached = depth;
    if (depth == target) {
        printf("found target at depth %d, exiting with 3\n", depth);
        stage = "exited from search";
        exit(3);
    }
    if (depth > 100)
        return -1;
    return search(depth + 1, target) + 1;
}

static int run(int target)
{
    int r;
    stage = "searching";
    r = search(0, target);
    stage = "search returned";        /* never reached */
    return r;
}

int main(void)
{
    puts("main: begin");
    printf("result %d\n", run(5));
    puts("main: not reached");
    return 0;
}
