/* A small vsnprintf: %s (and %.*s) %c %d %i %u %x %X %p %% with l/ll/z, width and zero padding. */
#ifndef PARAPET_FMT_H
#define PARAPET_FMT_H

#include "core/types.h"

int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int fmt_snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);

#endif
