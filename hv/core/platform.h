/* Whole-machine operations. */
#ifndef PARAPET_PLATFORM_H
#define PARAPET_PLATFORM_H

#include "core/types.h"

/* Reset the machine as a triple fault on bare hardware would. */
__noreturn void platform_reset(void);

#endif
