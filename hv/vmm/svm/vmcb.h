/*
 * The Virtual Machine Control Block (AMD64 APM vol. 2, appendix B): a 4 KiB page with the
 * control area at 0x000 and the guest state save area at 0x400.
 */
#ifndef PARAPET_VMCB_H
#define PARAPET_VMCB_H

#include "core/types.h"

/* Intercept vector 3 (offset 0x00C). */
#define INTERCEPT_INTR (1u << 0)
#define INTERCEPT_NMI (1u << 1)
#define INTERCEPT_SMI (1u << 2)
#define INTERCEPT_INIT (1u << 3)
#define INTERCEPT_CPUID (1u << 18)
#define INTERCEPT_IRET (1u << 20) /* before the IRET executes */
#define INTERCEPT_INVLPGA (1u << 26)
#define INTERCEPT_IOIO_PROT (1u << 27)
#define INTERCEPT_MSR_PROT (1u << 28)
#define INTERCEPT_SHUTDOWN (1u << 31)
/* Intercept vector 4 (offset 0x010). */
#define INTERCEPT_VMRUN (1u << 0)
#define INTERCEPT_VMMCALL (1u << 1)
#define INTERCEPT_VMLOAD (1u << 2)
#define INTERCEPT_VMSAVE (1u << 3)
#define INTERCEPT_STGI (1u << 4)
#define INTERCEPT_CLGI (1u << 5)
#define INTERCEPT_SKINIT (1u << 6)

/* Exception intercepts (offset 0x008): one bit per vector. */
#define INTERCEPT_EXCEPTION(vec) (1u << (vec))

/* Exit codes (EXITCODE, offset 0x070). */
#define SVM_EXIT_EXCP_DB 0x041 /* 0x040 + vector: an intercepted #DB */
#define SVM_EXIT_NMI 0x061
#define SVM_EXIT_CPUID 0x072
#define SVM_EXIT_IRET 0x074
#define SVM_EXIT_INVLPGA 0x07A
#define SVM_EXIT_IOIO 0x07B
#define SVM_EXIT_MSR 0x07C
#define SVM_EXIT_SHUTDOWN 0x07F
#define SVM_EXIT_VMRUN 0x080
#define SVM_EXIT_VMMCALL 0x081
#define SVM_EXIT_VMLOAD 0x082
#define SVM_EXIT_VMSAVE 0x083
#define SVM_EXIT_STGI 0x084
#define SVM_EXIT_CLGI 0x085
#define SVM_EXIT_SKINIT 0x086
#define SVM_EXIT_NPF 0x400
/* A nested page fault's EXITINFO1 (AMD APM vol. 2 §15.25.6): a #PF error code, and bit 33 for
 * a fault on the guest's own page-table access. */
#define NPF_ERR_WRITE (1ull << 1)
#define NPF_ERR_FETCH (1ull << 4)
#define NPF_ERR_IN_WALK (1ull << 33)
#define SVM_EXIT_INVALID (~0ull)

/* IOIO exit information (EXITINFO1). */
#define IOIO_TYPE_IN (1u << 0)
#define IOIO_STR (1u << 2)
#define IOIO_REP (1u << 3)
#define IOIO_SZ_SHIFT 4 /* bits 4..6: 8, 16, 32-bit operand */
#define IOIO_A_SHIFT 7  /* bits 7..9: 16, 32, 64-bit address */
#define IOIO_PORT_SHIFT 16

/* EVENTINJ / EXITINTINFO. */
#define EVENT_VALID (1u << 31)
#define EVENT_ERR_VALID (1u << 11)
#define EVENT_TYPE_NMI (2u << 8)
#define EVENT_TYPE_EXCEPTION (3u << 8)

struct vmcb_seg {
	u16 sel;
	u16 attrib;
	u32 limit;
	u64 base;
} __packed;

struct vmcb {
	/* Control area. */
	u32 intercept_cr;         /* 0x000 */
	u32 intercept_dr;         /* 0x004 */
	u32 intercept_exceptions; /* 0x008 */
	u32 intercept3;           /* 0x00C */
	u32 intercept4;           /* 0x010 */
	u32 intercept5;           /* 0x014 */
	u8 reserved_018[0x03C - 0x018];
	u16 pause_filter_threshold; /* 0x03C */
	u16 pause_filter_count;     /* 0x03E */
	u64 iopm_base_pa;           /* 0x040 */
	u64 msrpm_base_pa;          /* 0x048 */
	u64 tsc_offset;             /* 0x050 */
	u32 asid;                   /* 0x058 */
	u8 tlb_control;             /* 0x05C */
	u8 reserved_05d[3];
	u64 vintr;            /* 0x060 */
	u64 interrupt_shadow; /* 0x068: bit 0, the guest is in an STI or MOV SS shadow */
	u64 exitcode;         /* 0x070 */
	u64 exitinfo1;        /* 0x078 */
	u64 exitinfo2;        /* 0x080 */
	u64 exitintinfo;      /* 0x088 */
	u64 np_enable;        /* 0x090 */
	u8 reserved_098[0x0A8 - 0x098];
	u64 eventinj; /* 0x0A8 */
	u64 n_cr3;    /* 0x0B0 */
	u64 lbr_virt; /* 0x0B8 */
	u32 clean;    /* 0x0C0 */
	u32 reserved_0c4;
	u64 next_rip; /* 0x0C8 */
	u8 insn_len;  /* 0x0D0 */
	u8 insn_bytes[15];
	u8 reserved_0e0[0x400 - 0x0E0];

	/* State save area. */
	struct vmcb_seg es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr; /* 0x400 .. 0x49F */
	u8 reserved_4a0[0x4CB - 0x4A0];
	u8 cpl; /* 0x4CB */
	u32 reserved_4cc;
	u64 efer; /* 0x4D0 */
	u8 reserved_4d8[0x548 - 0x4D8];
	u64 cr4;    /* 0x548 */
	u64 cr3;    /* 0x550 */
	u64 cr0;    /* 0x558 */
	u64 dr7;    /* 0x560 */
	u64 dr6;    /* 0x568 */
	u64 rflags; /* 0x570 */
	u64 rip;    /* 0x578 */
	u8 reserved_580[0x5D8 - 0x580];
	u64 rsp; /* 0x5D8 */
	u8 reserved_5e0[0x5F8 - 0x5E0];
	u64 rax;                                        /* 0x5F8 */
	u64 star, lstar, cstar, sfmask, kernel_gs_base; /* 0x600 .. 0x620 */
	u64 sysenter_cs, sysenter_esp, sysenter_eip;    /* 0x628 .. 0x638 */
	u64 cr2;                                        /* 0x640 */
	u8 reserved_648[0x668 - 0x648];
	u64 g_pat; /* 0x668 */
	u8 reserved_670[0x1000 - 0x670];
} __packed;

_Static_assert(__builtin_offsetof(struct vmcb, exitcode) == 0x070, "vmcb layout");
_Static_assert(__builtin_offsetof(struct vmcb, n_cr3) == 0x0B0, "vmcb layout");
_Static_assert(__builtin_offsetof(struct vmcb, insn_len) == 0x0D0, "vmcb layout");
_Static_assert(__builtin_offsetof(struct vmcb, tr) == 0x490, "vmcb layout");
_Static_assert(__builtin_offsetof(struct vmcb, cpl) == 0x4CB, "vmcb layout");
_Static_assert(__builtin_offsetof(struct vmcb, efer) == 0x4D0, "vmcb layout");
_Static_assert(__builtin_offsetof(struct vmcb, rip) == 0x578, "vmcb layout");
_Static_assert(__builtin_offsetof(struct vmcb, rax) == 0x5F8, "vmcb layout");
_Static_assert(__builtin_offsetof(struct vmcb, cr2) == 0x640, "vmcb layout");
_Static_assert(__builtin_offsetof(struct vmcb, g_pat) == 0x668, "vmcb layout");
_Static_assert(sizeof(struct vmcb) == 4096, "vmcb size");

#endif
