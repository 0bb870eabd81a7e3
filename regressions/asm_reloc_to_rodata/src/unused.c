/* unused.c - padding, libnoise.a member nothing references (never pulled) */
#include <kitlibc.h>

int never_called(int x) { return puts("never") + x; }
