/* fmt.c - padding, libnoise.a member pulled by main's call to banner() */
#include <kitlibc.h>

void banner(const char *who) { printf("== sampler (%s) ==\n", who); }
