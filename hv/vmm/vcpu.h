/*
 * The arch-neutral virtual CPU. A backend (vmm/svm/, later vmm/vmx/) copies the guest state
 * it needs into struct vcpu, translates the hardware exit into a normalised struct vm_exit,
 * calls vmm_dispatch(), and writes the state back. Handlers touch only this structure.
 */
#ifndef PARAPET_VCPU_H
#define PARAPET_VCPU_H

#include "core/types.h"

/* Normalised exit reasons. Their numbers are ABI: VMMCALL EXIT_COUNTS reports them by index. */
enum exit_reason {
	EXIT_CPUID = 0,
	EXIT_RDMSR = 1,
	EXIT_WRMSR = 2,
	EXIT_IO = 3,
	EXIT_VMMCALL = 4,
	EXIT_SVM_INSN = 5,      /* VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA */
	EXIT_NPF = 6,           /* nested page fault */
	EXIT_SHUTDOWN = 7,      /* triple fault */
	EXIT_OTHER = 8,
	EXIT_NR
};

enum gpr { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

struct io_exit {
	u16 port;
	u8 size;        /* 1, 2 or 4 bytes */
	u8 addr_size;   /* 2, 4 or 8: address size of a string instruction */
	bool in, string, rep;
};

struct vm_exit {
	enum exit_reason reason;
	u64 raw;        /* the backend's own exit code, for logs */
	u64 next_rip;   /* when the backend knows it (I/O), else 0 */
	union {
		struct io_exit io;
		struct { u64 gpa, error; } npf;
	};
};

struct event {
	bool valid;
	u8 vector;
	bool has_error;
	u32 error;
};

struct vcpu {
	u64 gpr[16];            /* RSP is synchronised from the backend */
	u64 rip, rflags, cr0, cr4;
	u64 efer;               /* as the guest sees it: SVME never set */
	u8 cpl;
	struct vm_exit exit;
	struct event inject;    /* exception to deliver on the next entry */
	unsigned id;
	u64 exits[EXIT_NR];
};

/* Handle one exit. Returns normally; a handler never panics on guest input. */
void vmm_dispatch(struct vcpu *v);

/* Helpers for handlers. */
static inline void vcpu_skip(struct vcpu *v, unsigned insn_len) { v->rip += insn_len; }
static inline void vcpu_inject_ud(struct vcpu *v)
{
	v->inject = (struct event){ .valid = true, .vector = 6 };
}
static inline void vcpu_inject_gp(struct vcpu *v)
{
	/* #GP(0); real-mode exceptions push no error code. */
	v->inject = (struct event){ .valid = true, .vector = 13, .has_error = (v->cr0 & 1) != 0 };
}

/* The handlers, one file each under vmm/. */
void handle_cpuid(struct vcpu *v);
void handle_rdmsr(struct vcpu *v);
void handle_wrmsr(struct vcpu *v);
void handle_io(struct vcpu *v);
void handle_vmmcall(struct vcpu *v);

/* Counters of all CPUs, for VMMCALL EXIT_COUNTS. */
unsigned vmm_cpu_count(void);
const u64 *vmm_cpu_exits(unsigned cpu);

#endif
