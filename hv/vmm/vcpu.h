/*
 * The arch-neutral virtual CPU. A backend (vmm/svm/, later vmm/vmx/) copies the guest state
 * it needs into struct vcpu, translates the hardware exit into a normalised struct vm_exit,
 * calls vmm_dispatch(), and writes the state back. Handlers touch only this structure.
 */
#ifndef PARAPET_VCPU_H
#define PARAPET_VCPU_H

#include "core/types.h"
#include "core/spinlock.h"
#include "vmm/nmi.h"

struct guest_start;

/* Normalised exit reasons. Their numbers are ABI: VMMCALL EXIT_COUNTS reports them by index. */
enum exit_reason {
	EXIT_CPUID = 0,
	EXIT_RDMSR = 1,
	EXIT_WRMSR = 2,
	EXIT_IO = 3,
	EXIT_VMMCALL = 4,
	EXIT_VIRT_INSN = 5, /* a virtualization instruction (SVM: VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT,
			     * INVLPGA); #UD, as on a CPU without it */
	EXIT_NPF = 6,       /* a fault in the guest-physical tables (mm/stage2.h) */
	EXIT_SHUTDOWN = 7,  /* triple fault */
	EXIT_OTHER = 8,
	EXIT_NMI = 9,   /* an NMI: another CPU's request (vmm/apic.c) or the guest's own */
	EXIT_IRET = 10, /* the guest's IRET while its NMI handler runs (vmm/nmi.c) */
	EXIT_STEP = 11, /* the instruction the backend was asked to step has run (vmm/nmi.h) */
	EXIT_NR
};

enum gpr { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

struct io_exit {
	u16 port;
	u8 size;      /* 1, 2 or 4 bytes */
	u8 addr_size; /* 2, 4 or 8: address size of a string instruction */
	bool in, string, rep;
};

enum npf_access { NPF_READ, NPF_WRITE, NPF_FETCH };

struct vm_exit {
	enum exit_reason reason;
	u64 raw;      /* the backend's own exit code, for logs */
	u64 next_rip; /* when the backend knows it (I/O), else 0 */
	union {
		struct io_exit io;
		struct {
			u64 gpa;
			u8 access;    /* enum npf_access */
			bool in_walk; /* on the guest's own page-table access */
		} npf;
		struct {
			u32 dr6;
		} step; /* DR6 bits the guest's own debug state raised meanwhile */
	};
};

/* A data or I/O access an emulated instruction made, matched against the guest's breakpoints
 * (vmm/debug.c). vmm_dispatch fills it for port I/O; an emulator of memory accesses records
 * the linear address it accessed. */
enum access_kind { ACCESS_NONE, ACCESS_IO, ACCESS_READ, ACCESS_WRITE };
struct vm_access {
	enum access_kind kind;
	u64 addr; /* the port, or the linear address */
	unsigned size;
};

struct event { /* an exception */
	bool valid;
	u8 vector;
	bool has_error;
	u32 error;
	bool has_cr2; /* a #PF: the backend sets the guest's CR2 to cr2 on entry */
	u64 cr2;
};

/* Segment registers in their architectural numbering (ModRM reg field, override prefixes). */
enum sreg { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_NR };

/* A segment's hidden state. attr holds descriptor bits 40-47 in bits 0-7 (type, S, DPL, P)
 * and bits 52-55 in bits 8-11 (AVL, L, D/B, G); limit is in bytes (granularity applied). */
struct vseg {
	u64 base;
	u32 limit;
	u16 sel, attr;
};
#define SEG_ATTR_TYPE 0x00Fu
#define SEG_ATTR_S 0x010u /* code or data (not system) */
#define SEG_ATTR_P 0x080u
#define SEG_ATTR_L 0x200u  /* 64-bit code */
#define SEG_ATTR_DB 0x400u /* 32-bit default operand/address size, or big stack */

/* What other CPUs asked of this one through INIT and STARTUP IPIs (vmm/apic.c). */
struct vcpu_mail {
	struct spinlock lock;
	bool init; /* an INIT arrived: reset, then wait for STARTUP (the BSP restarts) */
	bool sipi; /* a STARTUP arrived for a CPU waiting for one */
	u8 vector; /* its page number: the CPU starts at vector:0000 in real mode */
};

struct vcpu {
	/* The guest state at this exit and what the handlers make of it: this CPU's own. */
	u64 gpr[16]; /* RSP is synchronised from the backend */
	u64 rip, rflags, cr0, cr4;
	u64 efer; /* as the guest sees it: SVME never set */
	u64 cr2, cr3;
	u64 dr6, dr7; /* the guest's; DR0-DR3 are read at the exit only when DR7 enables any */
	u64 dr[4];
	struct vseg seg[SEG_NR]; /* ES CS SS DS always; FS GS after string I/O and NPF exits */
	u8 cpl;
	struct vm_exit exit;
	struct vm_access access;           /* what the instruction being emulated accessed */
	struct event inject;               /* exception to deliver on the next entry */
	struct vnmi nmi;                   /* the guest's NMIs (vmm/nmi.h) */
	const struct guest_start *restart; /* set by a handler: start afresh there (handoff) */
	u64 stack;                         /* an AP's host stack top, kept for its restart after S3 */
	/* The backend's per-CPU state, kept across S3 (SVM: the VMCB and the host save area). */
	u64 hw[2];

	/* Fixed at start, read by every CPU. */
	unsigned id;
	u32 apic_id;
	bool bsp;

	/* What other CPUs touch: atomics, or under mail.lock. */
	struct vcpu_mail mail;
	bool waiting;       /* in wait-for-SIPI: held by Parapet (under mail.lock) */
	bool alive;         /* an AP reached Parapet's C code at start (atomic) */
	bool kicked;        /* an NMI from Parapet is on its way to this CPU (atomic) */
	bool flush_stage2;  /* flush its guest-physical TLB at the next entry (atomic: cpus_flush_stage2) */
	u32 guest_seq;      /* odd while it is in the guest (atomic: vmm/cpus.h) */
	u32 ldr, dfr;       /* the guest's xAPIC logical destination registers, as written (read by senders) */
	u64 exits[EXIT_NR]; /* read by VMMCALL EXIT_COUNTS on any CPU */
};

/* Handle one exit. Returns normally; a handler never panics on guest input. */
void vmm_dispatch(struct vcpu *v);

/* Helpers for handlers. */
static inline void vcpu_skip(struct vcpu *v, unsigned insn_len)
{
	v->rip += insn_len;
}
static inline void vcpu_inject_ud(struct vcpu *v)
{
	v->inject = (struct event){ .valid = true, .vector = 6 };
}
static inline void vcpu_inject_gp(struct vcpu *v)
{
	/* #GP(0); real-mode exceptions push no error code. */
	v->inject = (struct event){ .valid = true, .vector = 13, .has_error = (v->cr0 & 1) != 0 };
}

static inline void vcpu_inject_ss(struct vcpu *v)
{
	/* #SS(0): a stack-segment (SS) limit or type violation. */
	v->inject = (struct event){ .valid = true, .vector = 12, .has_error = (v->cr0 & 1) != 0 };
}

/* #DB, with the DR6 bits that say why (a trap: after the instruction). */
static inline void vcpu_inject_db(struct vcpu *v, u32 dr6)
{
	v->dr6 |= dr6;
	v->inject = (struct event){ .valid = true, .vector = 1 };
}

static inline void vcpu_inject_pf(struct vcpu *v, u32 error, u64 cr2)
{
	v->inject = (struct event){ .valid = true,
		.vector = 14,
		.has_error = true,
		.error = error,
		.has_cr2 = true,
		.cr2 = cr2 };
}

/* The handlers, one file each under vmm/. */
void handle_cpuid(struct vcpu *v);
void msr_init(void); /* vmm/msr.c: the MSRs above intercepted, once (backend->init first) */
void handle_rdmsr(struct vcpu *v);
void handle_wrmsr(struct vcpu *v);
void handle_io(struct vcpu *v);
void handle_vmmcall(struct vcpu *v);
bool mmio_handle_npf(struct vcpu *v); /* vmm/mmio.c: true when the NPF hit a trap page */
void handle_nmi(struct vcpu *v);      /* vmm/apic.c */
void handle_iret(struct vcpu *v);     /* vmm/nmi.c */

/* Counters of all CPUs, for VMMCALL EXIT_COUNTS. */
unsigned vmm_cpu_count(void);
const u64 *vmm_cpu_exits(unsigned cpu);

#endif
