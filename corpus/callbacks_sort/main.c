/* callbacks_sort: a program-defined generic quicksort driven by comparison
 * callbacks, plus other uses of function pointers. */
#include <kitlibc.h>

typedef int (*cmp_fn)(const void *, const void *);

static void swap_bytes(unsigned char *a, unsigned char *b, size_t size)
{
    unsigned char tmp[64];
    while (size > 0) {
        size_t chunk = size < sizeof tmp ? size : sizeof tmp;
        memcpy(tmp, a, chunk);
        memcpy(a, b, chunk);
        memcpy(b, tmp, chunk);
        a += chunk;
        b += chunk;
        size -= chunk;
    }
}

static int comparisons;

/* Lomuto quicksort over an array of n elements of `size` bytes. */
void kit_sort(void *base, size_t n, size_t size, cmp_fn cmp)
{
    unsigned char *b = base;
    size_t i, store;
    if (n < 2)
        return;
    swap_bytes(b + (n / 2) * size, b + (n - 1) * size, size);   /* middle pivot */
    store = 0;
    for (i = 0; i + 1 < n; i++) {
        comparisons++;
        if (cmp(b + i * size, b + (n - 1) * size) < 0) {
            if (i != store)
                swap_bytes(b + i * size, b + store * size, size);
            store++;
        }
    }
    swap_bytes(b + store * size, b + (n - 1) * size, size);
    kit_sort(b, store, size, cmp);
    kit_sort(b + (store + 1) * size, n - store - 1, size, cmp);
}

static int cmp_int_asc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_int_desc(const void *a, const void *b)
{
    return cmp_int_asc(b, a);
}

static int cmp_int_abs(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    int ax = x < 0 ? -x : x, ay = y < 0 ? -y : y;
    if (ax != ay)
        return ax < ay ? -1 : 1;
    return (x > y) - (x < y);           /* total order: -3 before 3 */
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct person {
    const char *name;
    int age;
    double score;
};

static int cmp_person(const void *a, const void *b)
{
    const struct person *p = a, *q = b;
    if (p->age != q->age)
        return p->age < q->age ? -1 : 1;
    return strcmp(p->name, q->name);
}

static void print_ints(const char *label, const int *v, int n)
{
    int i;
    printf("%-6s", label);
    for (i = 0; i < n; i++)
        printf(" %d", v[i]);
    putchar('\n');
}

/* Callbacks with a context pointer. */
typedef void (*visit_fn)(int value, void *ctx);

static void for_each(const int *v, int n, visit_fn fn, void *ctx)
{
    int i;
    for (i = 0; i < n; i++)
        fn(v[i], ctx);
}

struct stats {
    long sum;
    int min, max, count;
};

static void accumulate(int value, void *ctx)
{
    struct stats *s = ctx;
    if (s->count == 0 || value < s->min)
        s->min = value;
    if (s->count == 0 || value > s->max)
        s->max = value;
    s->sum += value;
    s->count++;
}

static void count_even(int value, void *ctx)
{
    if (value % 2 == 0)
        ++*(int *)ctx;
}

/* Functions returning function pointers. */
typedef int (*binop)(int, int);

static int op_add(int a, int b) { return a + b; }
static int op_sub(int a, int b) { return a - b; }
static int op_mul(int a, int b) { return a * b; }
static int op_max(int a, int b) { return a > b ? a : b; }

static binop pick(int code)
{
    switch (code) {
    case '+': return op_add;
    case '-': return op_sub;
    case '*': return op_mul;
    default:  return op_max;
    }
}

static int fold(const int *v, int n, binop f, int init)
{
    int i, acc = init;
    for (i = 0; i < n; i++)
        acc = f(acc, v[i]);
    return acc;
}

int main(void)
{
    int data[] = { 42, -7, 19, 3, -3, 88, 0, 19, -51, 7, 64, 5 };
    const int n = (int)(sizeof data / sizeof data[0]);
    const char *words[] = { "pear", "apple", "fig", "banana", "cherry", "apricot", "date" };
    struct person people[] = {
        { "zoe", 31, 88.5 }, { "adam", 25, 71.25 }, { "mia", 31, 93.0 },
        { "bob", 19, 64.75 }, { "eve", 25, 99.5 },
    };
    static const struct { const char *name; cmp_fn fn; } orders[] = {
        { "asc", cmp_int_asc }, { "desc", cmp_int_desc }, { "abs", cmp_int_abs },
    };
    struct stats st = { 0, 0, 0, 0 };
    int evens = 0;
    int i;

    print_ints("input", data, n);
    for (i = 0; i < 3; i++) {
        int copy[sizeof data / sizeof data[0]];
        memcpy(copy, data, sizeof copy);
        kit_sort(copy, (size_t)n, sizeof copy[0], orders[i].fn);
        print_ints(orders[i].name, copy, n);
    }

    kit_sort(words, sizeof words / sizeof words[0], sizeof words[0], cmp_str);
    printf("words:");
    for (i = 0; i < 7; i++)
        printf(" %s", words[i]);
    putchar('\n');

    kit_sort(people, 5, sizeof people[0], cmp_person);
    for (i = 0; i < 5; i++)
        printf("person %d: %-4s age %d score %.2f\n", i, people[i].name,
               people[i].age, people[i].score);

    for_each(data, n, accumulate, &st);
    for_each(data, n, count_even, &evens);
    printf("stats: count=%d sum=%ld min=%d max=%d evens=%d\n", st.count, st.sum,
           st.min, st.max, evens);

    printf("fold + = %d, - = %d, * = %d, max = %d\n", fold(data, 5, pick('+'), 0),
           fold(data, 5, pick('-'), 100), fold(data, 4, pick('*'), 1),
           fold(data, n, pick('?'), -1000));
    printf("pick('+') == op_add: %d, pick('*') == op_add: %d\n",
           pick('+') == op_add, pick('*') == op_add);
    printf("comparisons > 0: %s\n", comparisons > 0 ? "yes" : "no");
    return 0;
}
