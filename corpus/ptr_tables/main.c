/* ptr_tables: globals whose initialisers are addresses of other globals,
 * of array elements and struct members, of string literals and of functions. */
#include <kitlibc.h>

struct point {
    int x, y;
};

struct shape {
    const char *name;
    struct point origin;
    int sides;
    int (*area)(const struct shape *);
};

static int square_area(const struct shape *s) { return s->sides * s->sides; }
static int tri_area(const struct shape *s) { return s->sides * s->sides / 2; }
int zero_area(const struct shape *s) { (void)s; return 0; }

struct point origin = { 3, 4 };
int *origin_y = &origin.y;                      /* pointer to a struct member */
int values[] = { 10, 20, 30, 40, 50 };
int *third = &values[2];                        /* pointer into an array */
int *past_end = values + 5;                     /* one past the end */
int **third_ref = &third;                       /* pointer to a pointer */
const char *names[] = { "zero", "one", "two", "three" };
const char *const *names_tail = &names[2];
const char greeting[] = "pointer tables";
const char *greeting_word2 = greeting + 8;      /* into a string */

struct shape shapes[] = {
    { "square", { 0, 0 }, 4, square_area },
    { "triangle", { 1, 2 }, 6, tri_area },
    { "dot", { 5, 5 }, 0, zero_area },
};
struct point *triangle_origin = &shapes[1].origin;     /* nested member */
int *dot_sides = &shapes[2].sides;

static int add(int a, int b) { return a + b; }
static int sub(int a, int b) { return a - b; }
static int mul(int a, int b) { return a * b; }
int (*const ops[])(int, int) = { add, sub, mul };
static const char op_chars[] = "+-*";

/* A const table of structs mixing data and code addresses. */
struct command {
    const char *name;
    int (*fn)(int, int);
    int *operand;
};
static const struct command commands[] = {
    { "add-origin-y", add, &origin.y },
    { "mul-third", mul, &values[2] },
    { "sub-dot", sub, &shapes[2].sides },
};

/* A linked structure built entirely by static initialisers. */
struct node {
    int value;
    const struct node *next;
};
static const struct node n3 = { 3, NULL };
static const struct node n2 = { 2, &n3 };
static const struct node n1 = { 1, &n2 };
const struct node *list_head = &n1;

/* Self-referential data. */
struct ring {
    const char *tag;
    struct ring *next;
};
extern struct ring ring_b;
struct ring ring_a = { "a", &ring_b };
struct ring ring_b = { "b", &ring_a };

static int counter;
static int *const counter_ptr = &counter;

int main(void)
{
    const struct node *n;
    const struct ring *r;
    int i;

    printf("origin_y -> %d, third -> %d, **third_ref -> %d\n", *origin_y, *third,
           **third_ref);
    printf("past_end - values = %d, past_end[-1] = %d\n", (int)(past_end - values),
           past_end[-1]);
    printf("names_tail: %s %s\n", names_tail[0], names_tail[1]);
    printf("greeting_word2: %s (offset %d)\n", greeting_word2,
           (int)(greeting_word2 - greeting));
    for (i = 0; i < 3; i++)
        printf("shape %-8s at (%d,%d) sides %d area %d\n", shapes[i].name,
               shapes[i].origin.x, shapes[i].origin.y, shapes[i].sides,
               shapes[i].area(&shapes[i]));
    printf("triangle_origin: (%d,%d), dot_sides: %d\n", triangle_origin->x,
           triangle_origin->y, *dot_sides);
    for (i = 0; i < 3; i++)
        printf("7 %c 5 = %d\n", op_chars[i], ops[i](7, 5));
    for (i = 0; i < 3; i++)
        printf("%s(10, %d) = %d\n", commands[i].name, *commands[i].operand,
               commands[i].fn(10, *commands[i].operand));

    /* writes through the pointers are seen by the pointees */
    *origin_y = 40;
    **third_ref += 3;
    triangle_origin->x = -1;
    *counter_ptr += 5;
    printf("after writes: origin.y=%d values[2]=%d shapes[1].origin.x=%d counter=%d\n",
           origin.y, values[2], shapes[1].origin.x, counter);

    printf("list:");
    for (n = list_head; n != NULL; n = n->next)
        printf(" %d", n->value);
    printf("\nring:");
    for (r = &ring_a, i = 0; i < 5; r = r->next, i++)
        printf(" %s", r->tag);
    printf("\nring closes: %s\n", ring_b.next->next == &ring_b ? "yes" : "no");
    printf("shapes[2].area == zero_area: %s\n", shapes[2].area == zero_area ? "yes" : "no");
    return 0;
}
