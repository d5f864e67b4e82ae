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

/* Copy the real-mode-to-long-mode trampoline (boot/ap_trampoline.S) to its page below 1 MiB,
 * saving what was there, with entry(arg) to run on `stack`. Returns the page (its physical
 * address is the STARTUP vector or waking vector). cpus_tramp_remove puts the page back. */
void *cpus_tramp_install(u64 stack, void (*entry)(u64), u64 arg);
void cpus_tramp_remove(void);
#define CPUS_TRAMP_PAGE 0x8000u

/* After S3, on the BSP (self): start every AP that ran Parapet before, again, into Parapet's
 * wait-for-SIPI (their vCPUs keep their ids, stacks and VMCBs). Returns how many started;
 * *failed counts those that did not (each sent INIT again). */
unsigned cpus_restart_aps(struct vcpu *self, unsigned *failed);

/* Stop every other CPU under Parapet: each leaves the guest (Parapet's NMI) and parks in the
 * host. If another CPU holds the world already, self parks until it lets go, then retries.
 * True when every other CPU parked within about a second. */
bool cpus_freeze_others(struct vcpu *self);
/* Between exits and in wait-for-SIPI: park here while another CPU holds the world. */
void cpus_park_if_frozen(struct vcpu *v);
/* Let the parked CPUs go on (a sleep that did not happen). */
void cpus_thaw(void);
/* After S3 (every CPU was reset): nobody holds the world, nobody is parked. */
void cpus_reset_freeze(void);

/* The vCPU of the processor this runs on (by local APIC ID), or NULL. */
struct vcpu *cpus_self(void);

#endif
