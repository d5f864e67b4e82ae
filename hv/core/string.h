/* The few C library string functions the hypervisor needs (gcc may also emit calls to them). */
#ifndef PARAPET_STRING_H
#define PARAPET_STRING_H

#include "core/types.h"

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);

#endif
