#ifndef PARAPET_CPUS_H
#define PARAPET_CPUS_H

#include "vmm/vcpu.h"
#include "boot/layout.h"

/* A new vCPU with the next id, or NULL when MAX_CPUS are in use. */
struct vcpu *vcpu_new(void);

#endif
