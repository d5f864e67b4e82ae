#ifndef PARAPET_HANDOFF_MODULE_H
#define PARAPET_HANDOFF_MODULE_H

#include "boot/bootinfo.h"

/* Parse the policy record among the boot modules (panics on a malformed one), wipe it from
 * guest memory and hand it to the storage service. */
void handoff_take_policy(const struct boot_info *bi);

/* The one way a policy comes into force: parse the record at rec (hypervisor memory, or a
 * module), wipe those bytes whatever the outcome, and give the policy to the storage service.
 * Returns NULL, or why it was refused; refused also once a policy is in force. */
const char *handoff_install(void *rec, u64 len);

#endif
