/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the CPU conformance probe (/proc/parapet/conform): conform.c (the file and its
 * families), conform_cpuid.c, conform_mmio.c, conform_events.c and conform_asm.S (the
 * instruction forms, the single-step probes and the nested-NMI stub). Included from assembly
 * too: only macros outside the __ASSEMBLY__ block.
 */
#ifndef PARAPET_CONFORM_H
#define PARAPET_CONFORM_H

/*
 * struct cf_state, as the forms in conform_asm.S see it: the registers a form starts with,
 * the registers it ended with, RFLAGS before and after, and the vector of the exception it
 * raised (-1: none). Offsets in bytes; C checks them against the struct.
 */
#define CF_RAX 0
#define CF_RBX 1
#define CF_RCX 2
#define CF_RDX 3
#define CF_RSI 4
#define CF_RDI 5
#define CF_R8 6
#define CF_NREGS 7
#define CF_IN(r) ((r)*8)
#define CF_OUT(r) ((CF_NREGS + (r)) * 8)
#define CF_FLAGS_IN (2 * CF_NREGS * 8)
#define CF_FLAGS_OUT (CF_FLAGS_IN + 8)
#define CF_TRAP (CF_FLAGS_IN + 16)

/*
 * Attributes of a form (struct cf_form.attrs): what it touches and how to set it up.
 */
#define CF_LOAD 0x0001                      /* only reads the target (also run on read-only targets) */
#define CF_LOGIC 0x0002                     /* AF is undefined afterwards (AND, OR, XOR, TEST) */
#define CF_BITOP 0x0004                     /* only CF is defined afterwards, ZF unchanged (BT*) */
#define CF_WIDE 0x0008                      /* accesses 8 bytes: at the target's slot rounded down to 8 */
#define CF_STR_SRC 0x0010                   /* string form reading the target: RSI = target, RDI = RAM */
#define CF_STR_DST 0x0020                   /* string form writing the target: RDI = target, RSI = RAM */
#define CF_FS 0x0040                        /* FS.base = the target's page, the pointer register = offset */
#define CF_GS 0x0080                        /* the pointer register = target - GS.base (the kernel's) */
#define CF_A32 0x0100                       /* 67 prefix: the pointer's upper 32 bits are set and ignored */
#define CF_WIN 0x0200                       /* harmless on an I/O APIC redirection entry (keeps it masked) */
#define CF_DF 0x0400                        /* runs with RFLAGS.DF set; pointers start one dword higher */
#define CF_BIAS8 0x0800                     /* the pointer register is 8 below the target (disp8 8) */
#define CF_BIAS256 0x1000                   /* the pointer register is 0x100 below it (disp32 0x100) */
#define CF_MOFFS 0x2000                     /* the address is the instruction's 64-bit moffs (patched) */
#define CF_COUNT_SHIFT 16                   /* bits 23:16: RCX at the start (a count or bit offset); 0: 2 */
#define CF_COUNT(n) ((n) << CF_COUNT_SHIFT) /* no spaces: used in GAS macro arguments */

#ifndef __ASSEMBLY__
#include <linux/types.h>
#include <linux/seq_buf.h>

struct cf_state {
	u64 in[CF_NREGS];
	u64 out[CF_NREGS];
	u64 flags_in, flags_out;
	s64 trap;
};

/* One instruction form: emitted by the FORM and MOFFS macros of conform_asm.S. */
struct cf_form {
	const char *name;
	void (*run)(struct cf_state *s);
	u8 *moffs; /* CF_MOFFS: the instruction's 8-byte address field */
	u32 attrs;
	u32 reserved;
};

extern const struct cf_form cf_forms_start[], cf_forms_end[];

/* conform_asm.S: single-step probes (TF set by POPF right before the instruction named). */
extern const u8 cf_step_text_start[], cf_step_text_end[];
extern const u8 cf_step_nop_insn[], cf_step_cpuid_insn[], cf_step_in92_insn[], cf_step_incf8_insn[],
    cf_step_in80_insn[], cf_step_rdmsr_efer_insn[], cf_step_rdmsr_star_insn[], cf_step_apic_insn[];
void cf_step_nop(void);
void cf_step_cpuid(void);
void cf_step_in92(void);
void cf_step_incf8(void);
void cf_step_in80(void);
void cf_step_rdmsr_efer(void);
void cf_step_rdmsr_star(void);
void cf_step_apic(void __iomem *apic, u32 tpr);

/* conform_asm.S: the IDT entry for an NMI taken inside the NMI handler (counts it, IRETs). */
void cf_nmi_stub(void);
extern int cf_nmi_nested;

/* The families (one per function); each appends name=value lines to the buffer. */
void cf_cpuid(struct seq_buf *out);
void cf_mmio(struct seq_buf *out, const char *kind);
void cf_nmi(struct seq_buf *out);
void cf_step(struct seq_buf *out);
void cf_apicbase(struct seq_buf *out);

/* Set up and torn down with the module (notifiers, the NMI handler). */
int cf_events_init(void);
void cf_events_exit(void);

#endif /* __ASSEMBLY__ */
#endif /* PARAPET_CONFORM_H */
