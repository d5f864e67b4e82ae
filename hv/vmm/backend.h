/*
 * A virtualization backend (AMD-V today, vmm/svm/): an ops table chosen at run time, so one
 * image boots on any PC. Neutral code (main.c, vmm/cpus.c, vmm/events.c) reaches the
 * hardware's virtualization only through it.
 */
#ifndef PARAPET_BACKEND_H
#define PARAPET_BACKEND_H

#include "vmm/vstate.h"
#include "mm/pagetable.h"

struct vmm_backend {
	const char *name;
	/* NULL when this CPU can run the backend (with second-stage paging), else why not. */
	const char *(*check)(void);
	const struct pt_format *stage2; /* the format of its guest-physical tables (mm/stage2.h) */
	/* Once, on the BSP before any CPU runs a guest: shared state, the guest-physical tables'
	 * root. Only then are the intercept setters used. */
	void (*init)(u64 stage2_root);
	/* Intercept ports [base, base + count) (vmm/io.c), or let them pass; shared by all CPUs. */
	void (*io_intercept)(u16 base, u32 count, bool on);
	/* Intercept writes to an MSR, and reads too when `reads`; shared by all CPUs. */
	void (*msr_intercept)(u32 msr, bool reads);
	/* On this CPU: enable virtualization for v (its per-CPU state in v->hw, made once and kept
	 * across S3). From here the host holds NMIs but in wait_nmi and take_nmi. */
	void (*enable)(struct vcpu *v);
	/* Run v's guest: vcpu_check_events() before every entry, vmm_dispatch() after every exit. */
	__noreturn void (*run)(struct vcpu *v);
	/* Load state s into v, on v's own CPU, before its next entry: with no event pending, no
	 * interrupt shadow, the registers s leaves out zero (vmm/vstate.h). */
	void (*load)(struct vcpu *v, const struct vstate *s);
	/* On v's own CPU: flush v's guest translations (linear and guest-physical) at the next entry. */
	void (*flush_tlb)(struct vcpu *v);
	/* In the host: sleep until an NMI (true) or another wake-up (false); take an NMI an NMI exit
	 * left pending (false when none came). */
	bool (*wait_nmi)(void);
	bool (*take_nmi)(void);
};

/* The backend this CPU runs, chosen by backend_select(). */
extern const struct vmm_backend *backend;

/* Choose the backend this processor supports; panics with each one's reason if none. */
void backend_select(void);

/* On v's own CPU, between exits and before the first entry: what happened to it outside the
 * guest. A start a handler asked for (v->restart), another CPU's stop (cpus_park_if_frozen), an
 * INIT (the BSP restarts at the reset vector, an AP waits for STARTUP), and Parapet's
 * wait-for-SIPI; each new state is loaded through backend->load. */
void vcpu_check_events(struct vcpu *v);

/* Load state s into v: the neutral registers here, the rest through backend->load. */
void vcpu_load(struct vcpu *v, const struct vstate *s);

#endif
