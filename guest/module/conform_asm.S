/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The single-step probes of the conformance probe (conform_events.c) and the IDT entry that
 * catches an NMI taken inside the NMI handler.
 */
#include <linux/linkage.h>
#include <asm/asm.h>
#include <asm/processor-flags.h>
#include <asm/unwind_hints.h>

#include "conform.h"

	.text

/*
 * Single-step probes (conform_events.c). Each sets RFLAGS.TF with POPF right before the
 * instruction at cf_step_NAME_insn, so the #DB is due right after that instruction; NOPs
 * follow, then TF is cleared again (the die notifier clears it at the first #DB anyway).
 * Everything from cf_step_text_start to cf_step_text_end is where the notifier looks.
 */
.macro STEP_ON
	pushfq
	orq	$X86_EFLAGS_TF, (%rsp)
	popfq
.endm

.macro STEP_OFF
	nop
	nop
	nop
	nop
	pushfq
	andq	$~X86_EFLAGS_TF, (%rsp)
	popfq
.endm

	.balign	16
SYM_DATA_START(cf_step_text_start)
SYM_DATA_END(cf_step_text_start)

/* Control: an instruction no hypervisor intercepts. */
SYM_FUNC_START(cf_step_nop)
	STEP_ON
SYM_INNER_LABEL(cf_step_nop_insn, SYM_L_GLOBAL)
	nop
	STEP_OFF
	RET
SYM_FUNC_END(cf_step_nop)

/* CPUID: always intercepted. */
SYM_FUNC_START(cf_step_cpuid)
	push	%rbx
	xor	%eax, %eax
	xor	%ecx, %ecx
	STEP_ON
SYM_INNER_LABEL(cf_step_cpuid_insn, SYM_L_GLOBAL)
	cpuid
	STEP_OFF
	pop	%rbx
	RET
SYM_FUNC_END(cf_step_cpuid)

/* IN AL, 0x92 (imm8 form): port 92 (system control A), which Parapet hooks for its reset bit. */
SYM_FUNC_START(cf_step_in92)
	STEP_ON
SYM_INNER_LABEL(cf_step_in92_insn, SYM_L_GLOBAL)
	inb	$0x92, %al
	STEP_OFF
	RET
SYM_FUNC_END(cf_step_in92)

/* IN EAX, DX with DX = 0xcf8 (PCI CONFIG_ADDRESS, hooked by Parapet): a read, no side effect. */
SYM_FUNC_START(cf_step_incf8)
	mov	$0xcf8, %edx
	STEP_ON
SYM_INNER_LABEL(cf_step_incf8_insn, SYM_L_GLOBAL)
	inl	%dx, %eax
	STEP_OFF
	RET
SYM_FUNC_END(cf_step_incf8)

/* Control: IN AL, 0x80 (the POST port), which Parapet does not hook. */
SYM_FUNC_START(cf_step_in80)
	STEP_ON
SYM_INNER_LABEL(cf_step_in80_insn, SYM_L_GLOBAL)
	inb	$0x80, %al
	STEP_OFF
	RET
SYM_FUNC_END(cf_step_in80)

/* RDMSR EFER: in Parapet's MSR intercepts (it shadows SVME). */
SYM_FUNC_START(cf_step_rdmsr_efer)
	mov	$0xc0000080, %ecx
	STEP_ON
SYM_INNER_LABEL(cf_step_rdmsr_efer_insn, SYM_L_GLOBAL)
	rdmsr
	STEP_OFF
	RET
SYM_FUNC_END(cf_step_rdmsr_efer)

/* Control: RDMSR STAR, not intercepted. */
SYM_FUNC_START(cf_step_rdmsr_star)
	mov	$0xc0000081, %ecx
	STEP_ON
SYM_INNER_LABEL(cf_step_rdmsr_star_insn, SYM_L_GLOBAL)
	rdmsr
	STEP_OFF
	RET
SYM_FUNC_END(cf_step_rdmsr_star)

/* A store of ESI to the TPR of the xAPIC page at RDI (the caller passes the TPR's own value). */
SYM_FUNC_START(cf_step_apic)
	mov	%esi, %eax
	STEP_ON
SYM_INNER_LABEL(cf_step_apic_insn, SYM_L_GLOBAL)
	mov	%eax, 0x80(%rdi)
	STEP_OFF
	RET
SYM_FUNC_END(cf_step_apic)

SYM_DATA_START(cf_step_text_end)
SYM_DATA_END(cf_step_text_end)

/*
 * The NMI gate conform_events.c installs in a private IDT while its NMI handler waits for
 * the NMI it sent itself: taken on the current stack (no IST), it only counts and returns.
 * It runs only if the CPU delivered an NMI while the first one was still being handled.
 */
SYM_CODE_START(cf_nmi_stub)
	UNWIND_HINT_IRET_REGS
	lock incl cf_nmi_nested(%rip)
	iretq
SYM_CODE_END(cf_nmi_stub)
