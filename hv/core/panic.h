/* Fatal errors of the hypervisor itself: print the reason and CPU state, then halt.
 * Never called because of anything a guest does. */
#ifndef PARAPET_PANIC_H
#define PARAPET_PANIC_H

#include "core/types.h"

__noreturn void panic(const char *fmt, ...) __printf(1, 2);

#endif
