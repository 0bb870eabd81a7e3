/* int64_math: 64-bit integer arithmetic, wraparound (unsigned only: signed
 * overflow is undefined), division/modulo of negatives, shifts, rotates,
 * a 64x64->128 multiply done by hand, hashing and a PRNG. */
#include <kitlibc.h>

typedef long long i64;
typedef unsigned long long u64;

/* Non-static, non-const globals: the compiler cannot fold them away, so the
 * operations below really run on the target. */
u64 ua = 0xDEADBEEFCAFEBABEull;
u64 ub = 0x9E3779B97F4A7C15ull;
u64 umax = 0xFFFFFFFFFFFFFFFFull;
i64 sa = -9223372036854775807ll;
i64 sb = 1000000007ll;
i64 small_vals[] = { -7, 7, -2, 2, 3, -3 };
unsigned int u32a = 0xFFFFFFFFu;
int shift_counts[] = { 0, 1, 13, 31, 32, 47, 63 };

static u64 rotl(u64 x, int r)
{
    r &= 63;
    return r == 0 ? x : (x << r) | (x >> (64 - r));
}

/* high 64 bits of the 128-bit product, from 32-bit halves */
static u64 mulhi(u64 a, u64 b)
{
    u64 a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32;
    u64 b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
    u64 p0 = a_lo * b_lo, p1 = a_lo * b_hi, p2 = a_hi * b_lo, p3 = a_hi * b_hi;
    u64 mid = (p0 >> 32) + (p1 & 0xFFFFFFFFu) + (p2 & 0xFFFFFFFFu);
    return p3 + (p1 >> 32) + (p2 >> 32) + (mid >> 32);
}

static u64 fnv1a(const char *s)
{
    u64 h = 0xCBF29CE484222325ull;
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 0x100000001B3ull;
    }
    return h;
}

static u64 xorshift_state = 88172645463325252ull;

static u64 xorshift64star(void)
{
    u64 x = xorshift_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    xorshift_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static int popcount64(u64 x)
{
    int n = 0;
    while (x) {
        x &= x - 1;
        n++;
    }
    return n;
}

static int clz64(u64 x)
{
    int n = 0;
    if (x == 0)
        return 64;
    while (!(x & (1ull << 63))) {
        x <<= 1;
        n++;
    }
    return n;
}

static u64 isqrt64(u64 n)
{
    u64 lo = 0, hi = 4294967296ull;
    while (lo + 1 < hi) {
        u64 mid = lo + (hi - lo) / 2;
        if (mid <= n / mid)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static u64 powmod(u64 b, u64 e, u64 m)
{
    u64 r = 1;
    b %= m;
    while (e) {
        if (e & 1)
            r = (r * b) % m;            /* m < 2^32: no overflow */
        b = (b * b) % m;
        e >>= 1;
    }
    return r;
}

int main(void)
{
    int i, j;
    u64 acc;

    puts("-- unsigned wraparound");
    printf("ua*ub = %llu (0x%016llx)\n", ua * ub, ua * ub);
    printf("mulhi(ua,ub) = 0x%llx\n", mulhi(ua, ub));
    printf("umax+2 = %llu, 3-5 = %llu, -umax = %llu\n", umax + 2, (u64)3 - 5, -umax);
    printf("umax/ua = %llu, umax%%ua = %llu, ua/1000000007 = %llu, ua%%1000000007 = %llu\n",
           umax / ua, umax % ua, ua / (u64)sb, ua % (u64)sb);
    printf("u32: 0xFFFFFFFF*0xFFFFFFFF = %u, +1 = %u, as u64 product = %llu\n",
           u32a * u32a, u32a + 1u, (u64)u32a * u32a);

    puts("-- signed division and modulo");
    printf("sa = %lld, sa-1 = %lld, sa/10 = %lld, sa%%10 = %lld\n", sa, sa - 1, sa / 10,
           sa % 10);
    printf("sa/sb = %lld, sa%%sb = %lld, -sa/sb = %lld\n", sa / sb, sa % sb, -sa / sb);
    for (i = 0; i < 6; i += 2)
        for (j = 0; j < 6; j++)
            if (j != i)
                printf("%lld/%lld=%lld r%lld%s", small_vals[i], small_vals[j],
                       small_vals[i] / small_vals[j], small_vals[i] % small_vals[j],
                       j == 5 ? "\n" : "  ");
    printf("sign extension: %lld %lld %llu\n", (i64)(int)-5, (i64)(signed char)-100,
           (u64)(i64)-1);
    printf("truncation: %u %u %d\n", (unsigned int)ua, (unsigned int)(ua >> 32),
           (int)(short)(ua & 0x7FFF));

    puts("-- shifts and bits");
    for (i = 0; i < 7; i++) {
        int s = shift_counts[i];
        printf("s=%2d: 1<<s=%llx ua>>s=%llx rotl=%016llx sa>>s=%lld\n", s, 1ull << s,
               ua >> s, rotl(ua, s), sa >> s);
    }
    printf("popcount(ua)=%d popcount(umax)=%d clz(1)=%d clz(ub)=%d clz(0)=%d\n",
           popcount64(ua), popcount64(umax), clz64(1), clz64(ub), clz64(0));
    printf("ua&ub=%llx ua|ub=%llX ua^ub=%llx ~ua=%llx\n", ua & ub, ua | ub, ua ^ ub, ~ua);

    puts("-- algorithms");
    printf("fnv1a(\"\")=%016llx fnv1a(\"kitemu\")=%016llx\n", fnv1a(""), fnv1a("kitemu"));
    acc = 0;
    for (i = 0; i < 1000; i++)
        acc ^= xorshift64star();
    printf("xorshift64*: last=%llu xor=%llx\n", xorshift64star(), acc);
    printf("isqrt(umax)=%llu isqrt(10^18)=%llu isqrt(999999999999)=%llu\n",
           isqrt64(umax), isqrt64(1000000000000000000ull), isqrt64(999999999999ull));
    printf("powmod(2,10^18,10^9+7)=%llu powmod(ua,ub,4294967291)=%llu\n",
           powmod(2, 1000000000000000000ull, 1000000007ull),
           powmod(ua, ub, 4294967291ull));
    acc = 1;
    for (i = 1; i <= 25; i++)
        acc *= (u64)i;                  /* 25! mod 2^64 */
    printf("25! mod 2^64 = %llu\n", acc);
    return 0;
}
