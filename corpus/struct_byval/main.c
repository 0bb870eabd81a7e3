/* struct_byval/main.c: calls geom.c with structs by value. */
#include <kitlibc.h>

struct pair { int a, b; };
struct fpair { float x, y; };
struct span { long start, len; };
struct vec2 { double x, y; };
struct mix { double d; long n; };
struct tiny { unsigned char r, g, b; };
struct big {
    double m[3];
    int tag;
    char label[12];
};

struct pair pair_swap(struct pair p);
struct fpair fpair_scale(struct fpair p, float k);
struct span span_join(struct span a, struct span b);
struct vec2 vec2_add(struct vec2 a, struct vec2 b);
struct vec2 vec2_scale(struct vec2 v, double k);
double vec2_dot(struct vec2 a, struct vec2 b);
struct vec2 vec2_sum5(struct vec2 a, struct vec2 b, struct vec2 c, struct vec2 d,
                      struct vec2 e);
struct mix mix_step(struct mix m, int k);
struct tiny tiny_invert(struct tiny t);
struct big big_transform(struct big b, struct vec2 shift, int delta);
double big_total(struct big b);
long many_args(int a, struct pair p, long b, struct span s, int c, struct pair q,
               long d, struct span t, int e);

static struct vec2 (*const vec_ops[])(struct vec2, struct vec2) = { vec2_add };

static struct vec2 make_vec(double x, double y)
{
    struct vec2 v;
    v.x = x;
    v.y = y;
    return v;
}

static void print_big(const char *what, struct big b)
{
    printf("%s: m=[%g %g %g] tag=%d label=%s\n", what, b.m[0], b.m[1], b.m[2], b.tag,
           b.label);
}

int main(void)
{
    struct pair p = { 3, -9 }, q;
    struct fpair fp = { 1.5f, -0.25f };
    struct span s1 = { 10, 5 }, s2 = { 12, 20 }, sj;
    struct vec2 a = { 1.5, -2.0 }, b = { 0.25, 4.0 }, c, v[5];
    struct mix m = { 10.0, 7 };
    struct tiny t = { 0, 100, 255 }, ti;
    struct big big1 = { { 1.0, 2.5, -4.0 }, 7, "alpha" }, big2;
    int i;

    assert(sizeof(struct big) > 16);
    assert(sizeof(struct pair) == 8 && sizeof(struct vec2) == 16);

    q = pair_swap(p);
    printf("pair_swap(%d,%d) = (%d,%d)\n", p.a, p.b, q.a, q.b);
    fp = fpair_scale(fp, 4.0f);
    printf("fpair_scale = (%g,%g)\n", (double)fp.x, (double)fp.y);
    sj = span_join(s1, s2);
    printf("span_join([%ld+%ld],[%ld+%ld]) = [%ld+%ld]\n", s1.start, s1.len, s2.start,
           s2.len, sj.start, sj.len);

    c = vec2_add(a, b);
    printf("vec2_add = (%g,%g)\n", c.x, c.y);
    c = vec2_scale(a, -3.0);
    printf("vec2_scale(a,-3) = (%g,%g), a unchanged = (%g,%g)\n", c.x, c.y, a.x, a.y);
    assert(a.x == 1.5 && a.y == -2.0);
    printf("vec2_dot = %g\n", vec2_dot(a, b));
    for (i = 0; i < 5; i++)
        v[i] = make_vec(i + 0.5, -i * 2.0);
    c = vec2_sum5(v[0], v[1], v[2], v[3], v[4]);
    printf("vec2_sum5 = (%g,%g)\n", c.x, c.y);
    c = vec_ops[0](make_vec(1, 2), make_vec(3, 4));
    printf("through a function pointer = (%g,%g)\n", c.x, c.y);

    for (i = 1; i <= 3; i++) {
        m = mix_step(m, i);
        printf("mix_step %d: d=%g n=%ld\n", i, m.d, m.n);
    }
    ti = tiny_invert(t);
    printf("tiny_invert(%u,%u,%u) = (%u,%u,%u)\n", t.r, t.g, t.b, ti.r, ti.g, ti.b);

    big2 = big_transform(big1, make_vec(0.5, -1.0), 35);
    print_big("big1", big1);
    print_big("big2", big2);
    printf("big_total(big1)=%g big_total(big2)=%g\n", big_total(big1), big_total(big2));
    big1 = big_transform(big_transform(big1, a, 1), b, 2);
    print_big("big1 twice", big1);

    printf("many_args = %ld\n",
           many_args(1, p, 1000, s1, 2, q, 20000, s2, 3));
    return 0;
}
