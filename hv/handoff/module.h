#ifndef PARAPET_HANDOFF_MODULE_H
#define PARAPET_HANDOFF_MODULE_H

#include "boot/bootinfo.h"

/* Parse the policy record among the boot modules (panics on a malformed one), wipe it from
 * guest memory and hand it to the storage service. */
void handoff_take_policy(const struct boot_info *bi);

#endif
