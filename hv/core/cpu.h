/* Host-side per-CPU setup: descriptor tables and exception handling. */
#ifndef PARAPET_CPU_H
#define PARAPET_CPU_H

#include "core/types.h"

/* The state pushed by an exception stub (core/isr.S), in push order reversed. */
struct trap_frame {
	u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	u64 vector, error;
	u64 rip, cs, rflags, rsp, ss;
};

/* Load the hypervisor's own GDT and IDT (they live in its hidden memory). */
void cpu_tables_init(void);

/* The host runs with GIF clear. These open it briefly (core/isr.S):
 * cpu_wait_nmi sleeps until an NMI (true) or another wake-up event (false);
 * cpu_take_nmi takes an NMI that an NMI intercept left pending (false if none came). */
bool cpu_wait_nmi(void);
bool cpu_take_nmi(void);

#endif
