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

/* The host holds NMIs but in a backend's windows (struct vmm_backend wait_nmi, take_nmi): code
 * from `from` to `to` (both included) where an NMI may arrive, which returns to `resume`
 * instead. Registered once; every CPU's NMI goes through them. */
struct cpu_nmi_window {
	const char *from, *to, *resume;
};
void cpu_nmi_windows(const struct cpu_nmi_window *w, unsigned n);

#endif
