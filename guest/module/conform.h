/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the CPU conformance probe (/proc/parapet/conform): conform.c (the file and its
 * families), conform_cpuid.c, conform_events.c and conform_asm.S (the single-step probes and
 * the nested-NMI stub). Included from assembly too: only macros outside the __ASSEMBLY__ block.
 */
#ifndef PARAPET_CONFORM_H
#define PARAPET_CONFORM_H

#ifndef __ASSEMBLY__
#include <linux/types.h>
#include <linux/seq_buf.h>

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
void cf_nmi(struct seq_buf *out);
void cf_step(struct seq_buf *out);
void cf_apicbase(struct seq_buf *out);

/* Set up and torn down with the module (notifiers, the NMI handler). */
int cf_events_init(void);
void cf_events_exit(void);

#endif /* __ASSEMBLY__ */
#endif /* PARAPET_CONFORM_H */
