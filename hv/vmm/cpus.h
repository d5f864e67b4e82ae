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

/*
 * The nested page tables changed (vmm/mmio.c): returns when no CPU's nested TLB can hold a
 * translation from before the call. Every CPU is flagged to flush at its next entry (this one
 * too); one that is in the guest is interrupted by Parapet's NMI and waited for until it has left
 * the guest once. A CPU in the host (handling an exit, spinning on a lock the caller holds, in
 * wait-for-SIPI, parked) counts at once: it flushes before it enters.
 *
 * The entry side (cpus_guest_enter) marks the CPU in the guest, then reads its flag; this side
 * sets the flag, then reads the mark; both sequentially consistent (Dekker): either the entering
 * CPU sees the flag and flushes, or this side sees it in the guest and waits for its exit.
 */
void cpus_flush_stage2(void);

/* The backend, right before each entry with nothing between it and VMRUN that can wait: v is in
 * the guest from here. True when the entry must flush v's nested TLB. */
static inline bool cpus_guest_enter(struct vcpu *v)
{
	__atomic_store_n(&v->guest_seq, __atomic_load_n(&v->guest_seq, __ATOMIC_RELAXED) + 1, __ATOMIC_SEQ_CST);
	return __atomic_exchange_n(&v->flush_stage2, false, __ATOMIC_SEQ_CST);
}

/* The backend, right after the exit. */
static inline void cpus_guest_exit(struct vcpu *v)
{
	__atomic_store_n(&v->guest_seq, __atomic_load_n(&v->guest_seq, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}

/* The vCPU of the processor this runs on (by local APIC ID), or NULL. */
struct vcpu *cpus_self(void);

#endif
