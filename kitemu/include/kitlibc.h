/*
 * kitlibc.h - the only libc-like header the kitemu C corpus may include.
 *
 * Corpus objects are compiled with `clang --target=T -ffreestanding -c` for
 * cross targets that have no libc headers installed.  Every function declared
 * here is provided by kitemu's host library (undefined symbols are bound to
 * Python implementations at link time).  The prototypes are the standard C
 * ones, compatible with glibc, so the same sources also build natively with
 * gcc against glibc (the native run is the oracle for expected.stdout).
 *
 * Besides this header, corpus programs may only include clang's freestanding
 * headers: <stdarg.h>, <stddef.h>, <stdint.h>, <stdbool.h>.
 * Nothing that is not declared here may be called.
 */
#ifndef KITLIBC_H
#define KITLIBC_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Floating-point contraction (a*b+c -> fma) is on by default in clang and
 * would make aarch64/riscv64 round differently from x86-64.  Turn it off for
 * every corpus translation unit so double results are bit-identical on all
 * targets.  (gcc does not know the pragma; it is compiled with
 * -ffp-contract=off by the native check instead.)
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__GNUC__)
#define KIT_NORETURN __attribute__((__noreturn__))
#define KIT_PRINTF(fmt, first) __attribute__((__format__(__printf__, fmt, first)))
#else
#define KIT_NORETURN
#define KIT_PRINTF(fmt, first)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* stdio */
int putchar(int c);
int puts(const char *s);
int printf(const char *restrict fmt, ...) KIT_PRINTF(1, 2);
int snprintf(char *restrict buf, size_t size, const char *restrict fmt, ...)
    KIT_PRINTF(3, 4);
int sprintf(char *restrict buf, const char *restrict fmt, ...) KIT_PRINTF(2, 3);
int vprintf(const char *restrict fmt, va_list ap) KIT_PRINTF(1, 0);
int vsnprintf(char *restrict buf, size_t size, const char *restrict fmt,
              va_list ap) KIT_PRINTF(3, 0);
int vsprintf(char *restrict buf, const char *restrict fmt, va_list ap)
    KIT_PRINTF(2, 0);

/* stdlib */
void *malloc(size_t size);
void *calloc(size_t nmemb, size_t size);
void *realloc(void *ptr, size_t size);
void free(void *ptr);
void exit(int status) KIT_NORETURN;
void abort(void) KIT_NORETURN;

/* string */
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *s, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strcpy(char *restrict dst, const char *restrict src);
char *strchr(const char *s, int c);

/* assert (glibc signature) */
void __assert_fail(const char *assertion, const char *file, unsigned int line,
                   const char *function) KIT_NORETURN;

#ifdef __cplusplus
}
#endif

#ifdef NDEBUG
#define assert(e) ((void)0)
#else
#define assert(e) \
    ((e) ? (void)0 : __assert_fail(#e, __FILE__, __LINE__, __func__))
#endif

#endif /* KITLIBC_H */
