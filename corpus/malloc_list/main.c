/* malloc_list: heap use through the host allocator: a growing vector
 * (realloc), a singly linked list (malloc/free), calloc'd zeroed tables,
 * a chained hash table of strdup'ed words. */
#include <kitlibc.h>

/* ---- growing vector ---- */
struct vec {
    long *data;
    size_t len, cap;
    int reallocs;
};

static void vec_push(struct vec *v, long x)
{
    if (v->len == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 4;
        long *nd = realloc(v->data, ncap * sizeof *nd);
        if (nd == NULL) {
            puts("out of memory");
            exit(1);
        }
        v->data = nd;
        v->cap = ncap;
        v->reallocs++;
    }
    v->data[v->len++] = x;
}

/* ---- linked list ---- */
struct node {
    int value;
    struct node *next;
};

static struct node *list_push_front(struct node *head, int value)
{
    struct node *n = malloc(sizeof *n);
    if (n == NULL)
        exit(1);
    n->value = value;
    n->next = head;
    return n;
}

static struct node *list_reverse(struct node *head)
{
    struct node *prev = NULL;
    while (head) {
        struct node *next = head->next;
        head->next = prev;
        prev = head;
        head = next;
    }
    return prev;
}

static struct node *list_remove_if(struct node *head, int (*pred)(int), int *removed)
{
    struct node **link = &head;
    while (*link) {
        if (pred((*link)->value)) {
            struct node *dead = *link;
            *link = dead->next;
            free(dead);
            ++*removed;
        } else {
            link = &(*link)->next;
        }
    }
    return head;
}

static int is_multiple_of_3(int v) { return v % 3 == 0; }

static void list_print(const char *label, const struct node *n)
{
    printf("%s:", label);
    for (; n; n = n->next)
        printf(" %d", n->value);
    putchar('\n');
}

static int list_free(struct node *n)
{
    int count = 0;
    while (n) {
        struct node *next = n->next;
        free(n);
        n = next;
        count++;
    }
    return count;
}

/* ---- hash table of words ---- */
struct entry {
    char *word;
    int count;
    struct entry *next;
};

#define BUCKETS 13

static unsigned int hash_word(const char *s)
{
    unsigned int h = 5381;
    while (*s)
        h = h * 33u + (unsigned char)*s++;
    return h % BUCKETS;
}

static char *dup_string(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    if (d != NULL)
        strcpy(d, s);
    return d;
}

static void table_add(struct entry **table, const char *word)
{
    unsigned int h = hash_word(word);
    struct entry *e;
    for (e = table[h]; e; e = e->next)
        if (strcmp(e->word, word) == 0) {
            e->count++;
            return;
        }
    e = calloc(1, sizeof *e);
    if (e == NULL)
        exit(1);
    e->word = dup_string(word);
    e->count = 1;
    e->next = table[h];
    table[h] = e;
}

int main(void)
{
    static const char *const text[] = {
        "the", "cat", "sat", "on", "the", "mat", "and", "the", "dog", "sat",
        "on", "the", "cat", "then", "a", "bird", "sat", "on", "the", "dog",
    };
    struct vec v = { NULL, 0, 0, 0 };
    struct node *list = NULL;
    struct entry **table;
    int *zeros;
    long sum = 0;
    size_t i;
    int removed = 0, nonzero = 0, freed, distinct = 0, total = 0;
    char *grow;

    for (i = 0; i < 1000; i++)
        vec_push(&v, (long)(i * i) - 500);
    for (i = 0; i < v.len; i++)
        sum += v.data[i];
    printf("vector: len=%zu cap=%zu reallocs=%d sum=%ld last=%ld\n", v.len, v.cap,
           v.reallocs, sum, v.data[v.len - 1]);
    v.data = realloc(v.data, 10 * sizeof *v.data);      /* shrink keeps prefix */
    printf("after shrink: %ld %ld %ld\n", v.data[0], v.data[1], v.data[9]);
    free(v.data);

    for (i = 1; i <= 12; i++)
        list = list_push_front(list, (int)i);
    list_print("list", list);
    list = list_reverse(list);
    list_print("reversed", list);
    list = list_remove_if(list, is_multiple_of_3, &removed);
    list_print("without multiples of 3", list);
    freed = list_free(list);
    printf("removed %d, freed %d\n", removed, freed);

    zeros = calloc(4096, sizeof *zeros);
    if (zeros == NULL)
        return 1;
    for (i = 0; i < 4096; i++)
        nonzero += zeros[i] != 0;
    printf("calloc(4096 ints): %d nonzero\n", nonzero);
    free(zeros);

    table = calloc(BUCKETS, sizeof *table);
    if (table == NULL)
        return 1;
    for (i = 0; i < sizeof text / sizeof text[0]; i++)
        table_add(table, text[i]);
    for (i = 0; i < BUCKETS; i++) {
        struct entry *e = table[i];
        while (e) {
            struct entry *next = e->next;
            if (e->count > 1)
                printf("word %-4s x%d (bucket %zu)\n", e->word, e->count, i);
            distinct++;
            total += e->count;
            free(e->word);
            free(e);
            e = next;
        }
    }
    free(table);
    printf("%d distinct words, %d total\n", distinct, total);

    grow = realloc(NULL, 4);                /* realloc(NULL, n) == malloc(n) */
    if (grow == NULL)
        return 1;
    strcpy(grow, "abc");
    for (i = 0; i < 5; i++) {
        size_t len = strlen(grow);
        char *bigger = realloc(grow, len * 2 + 1);
        if (bigger == NULL)
            return 1;
        grow = bigger;
        memcpy(grow + len, grow, len);
        grow[len * 2] = '\0';
    }
    printf("grown string: length %d, starts %.9s, ends %s\n", (int)strlen(grow), grow,
           grow + strlen(grow) - 6);
    free(grow);
    free(NULL);                             /* allowed, does nothing */
    puts("done");
    return 0;
}
