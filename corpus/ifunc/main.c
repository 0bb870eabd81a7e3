/* ifunc: GNU indirect functions.  Each resolver picks an implementation
 * from a "capability level" global; resolvers call no host function.  On
 * non-ELF targets plain functions make the same choice at run time, so the
 * output is the same everywhere. */
#include <kitlibc.h>

typedef int checksum_fn(const unsigned char *p, int n);
typedef const char *name_fn(void);
typedef int answer_fn(void);

int cpu_level = 2;                      /* pretend capability detection */

int checksum_scalar(const unsigned char *p, int n)
{
    int i, s = 0;
    for (i = 0; i < n; i++)
        s = (s * 33 + p[i]) % 65521;
    return s;
}

int checksum_unrolled(const unsigned char *p, int n)
{
    int i = 0, s = 0;
    for (; i + 4 <= n; i += 4) {
        s = (s * 33 + p[i]) % 65521;
        s = (s * 33 + p[i + 1]) % 65521;
        s = (s * 33 + p[i + 2]) % 65521;
        s = (s * 33 + p[i + 3]) % 65521;
    }
    for (; i < n; i++)
        s = (s * 33 + p[i]) % 65521;
    return s;
}

static const char *name_scalar(void) { return "scalar"; }
static const char *name_unrolled(void) { return "unrolled"; }

int answer_v1(void) { return 41; }
int answer_v2(void) { return 42; }

#if defined(__ELF__)

/* Resolvers: `used` because clang 14 does not count the ifunc attribute as
 * a use of a static function and would warn. */
#define RESOLVER static __attribute__((used))

RESOLVER checksum_fn *resolve_checksum(void)
{
    return cpu_level >= 2 ? checksum_unrolled : checksum_scalar;
}
int checksum(const unsigned char *p, int n) __attribute__((ifunc("resolve_checksum")));

RESOLVER name_fn *resolve_impl_name(void)
{
    return cpu_level >= 2 ? name_unrolled : name_scalar;
}
const char *impl_name(void) __attribute__((ifunc("resolve_impl_name")));

RESOLVER answer_fn *resolve_answer(void)
{
    return cpu_level > 1 ? answer_v2 : answer_v1;
}
int answer(void) __attribute__((ifunc("resolve_answer")));

#else /* plain fallback: same choices, made at call time */

int checksum(const unsigned char *p, int n)
{
    return (cpu_level >= 2 ? checksum_unrolled : checksum_scalar)(p, n);
}

const char *impl_name(void)
{
    return cpu_level >= 2 ? name_unrolled() : name_scalar();
}

int answer(void)
{
    return cpu_level > 1 ? answer_v2() : answer_v1();
}

#endif

/* An ifunc's address stored by a static initialiser. */
checksum_fn *const checksum_ptr = checksum;

int main(void)
{
    static const unsigned char data[] = "The quick brown fox jumps over the lazy dog";
    const int n = (int)sizeof data - 1;
    checksum_fn *fp = checksum;         /* address taken at run time */
    int direct = checksum(data, n);

    printf("implementation: %s\n", impl_name());
    printf("checksum direct=%d via pointer=%d via static pointer=%d\n", direct,
           fp(data, n), checksum_ptr(data, n));
    printf("reference scalar=%d unrolled=%d\n", checksum_scalar(data, n),
           checksum_unrolled(data, n));
    printf("checksum of 7 bytes: %d\n", checksum(data, 7));
    printf("answer() = %d\n", answer());
    return 0;
}
