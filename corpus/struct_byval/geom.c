/* struct_byval/geom.c: functions taking and returning structs by value.
 * They live in their own translation unit so every call really follows the
 * target's calling convention. */
#include <kitlibc.h>

struct pair { int a, b; };                       /* 8 bytes */
struct fpair { float x, y; };                    /* 8 bytes, floats */
struct span { long start, len; };                /* 16 bytes */
struct vec2 { double x, y; };                    /* 16 bytes, doubles */
struct mix { double d; long n; };                /* 16 bytes, mixed */
struct tiny { unsigned char r, g, b; };          /* 3 bytes */
struct big {                                     /* 40 bytes */
    double m[3];
    int tag;
    char label[12];
};

struct pair pair_swap(struct pair p)
{
    struct pair r = { p.b, p.a };
    return r;
}

struct fpair fpair_scale(struct fpair p, float k)
{
    p.x *= k;
    p.y *= k;
    return p;
}

struct span span_join(struct span a, struct span b)
{
    struct span r;
    long end_a = a.start + a.len, end_b = b.start + b.len;
    r.start = a.start < b.start ? a.start : b.start;
    r.len = (end_a > end_b ? end_a : end_b) - r.start;
    return r;
}

struct vec2 vec2_add(struct vec2 a, struct vec2 b)
{
    struct vec2 r = { a.x + b.x, a.y + b.y };
    return r;
}

struct vec2 vec2_scale(struct vec2 v, double k)
{
    v.x *= k;                   /* modifies the callee's copy only */
    v.y *= k;
    return v;
}

double vec2_dot(struct vec2 a, struct vec2 b)
{
    double xx = a.x * b.x, yy = a.y * b.y;
    return xx + yy;
}

/* Five 16-byte FP structs: not all fit in argument registers. */
struct vec2 vec2_sum5(struct vec2 a, struct vec2 b, struct vec2 c, struct vec2 d,
                      struct vec2 e)
{
    struct vec2 r;
    r.x = a.x + b.x + c.x + d.x + e.x;
    r.y = a.y + b.y + c.y + d.y + e.y;
    return r;
}

struct mix mix_step(struct mix m, int k)
{
    m.d = m.d * 0.5 + k;
    m.n = m.n * 3 - k;
    return m;
}

struct tiny tiny_invert(struct tiny t)
{
    struct tiny r;
    r.r = (unsigned char)(255 - t.r);
    r.g = (unsigned char)(255 - t.g);
    r.b = (unsigned char)(255 - t.b);
    return r;
}

struct big big_transform(struct big b, struct vec2 shift, int delta)
{
    int i;
    for (i = 0; i < 3; i++)
        b.m[i] = b.m[i] * 2 + (i == 0 ? shift.x : shift.y);
    b.tag += delta;
    b.label[0] = (char)(b.label[0] - 'a' + 'A');
    return b;
}

double big_total(struct big b)
{
    return b.m[0] + b.m[1] + b.m[2] + b.tag;
}

/* Mixed scalars and structs, more arguments than registers. */
long many_args(int a, struct pair p, long b, struct span s, int c, struct pair q,
               long d, struct span t, int e)
{
    return a + p.a * 10 + p.b * 100 + b + s.start + s.len + c + q.a + q.b + d +
           t.start * 2 + t.len * 3 + e;
}
