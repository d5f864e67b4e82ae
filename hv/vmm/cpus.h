#ifndef PARAPET_CPUS_H
#define PARAPET_CPUS_H

#include "vmm/vcpu.h"
#include "boot/layout.h"

/* A new vCPU with the next id, or NULL when MAX_CPUS are in use. */
struct vcpu *vcpu_new(void);

/* vCPU i, i < vmm_cpu_count(). */
struct vcpu *vcpu_get(unsigned i);

/* On the BSP, before the guest runs: make vCPU 0 for it, start every other processor the
 * MADT lists and hold it in wait-for-SIPI. Returns the BSP's vCPU. */
struct vcpu *cpus_start(void);

#endif
