/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The instruction forms of the conformance probe (conform_mmio.c runs each against RAM, the
 * local APIC, the I/O APIC and PCIe ECAM), the single-step probes (conform_events.c) and the
 * IDT entry that catches an NMI taken inside the NMI handler.
 *
 * A form is one instruction between a harness that loads RAX, RBX, RCX, RDX, RSI, RDI, R8 and
 * RFLAGS from a struct cf_state (conform.h), runs it, and stores the registers and RFLAGS it
 * left. An exception the instruction raises lands, through an exception-table entry of type
 * EX_TYPE_FAULT (which puts the vector in RAX), on a pad that records the vector instead: a
 * #GP from a hypervisor that does not emulate the form becomes a value, not an oops.
 *
 * FORM NAME, ATTRS, INSN       the instruction as written (GAS syntax)
 * FORMP NAME, ATTRS, BYTE, INSN   a prefix byte in front of it (for prefixes GAS does not
 *                              write, or would drop: DS and a second segment override)
 * MOFFS NAME, ATTRS, BYTES     A0-A3 with a 64-bit address field, which conform_mmio.c patches
 *                              to the target's address before it runs the form
 * Each also emits a struct cf_form into .rodata.cf_forms, in the order written here.
 *
 * A form touches only the 16 bytes from the target's slot rounded down to 8: the slot's dword,
 * the dword after it (BT* with a far bit offset, REP with count 2, CF_DF), the qwords of the
 * 8-byte forms. conform_mmio.c chose every target's slot so that these bytes are harmless. CF_WIN marks the forms whose every write keeps an I/O APIC redirection
 * entry masked with a fixed or lowest-priority delivery mode, given the register values and
 * the entry's start value 0x00010040 that conform_mmio.c uses (their arithmetic is noted
 * where it matters); only those, and the loads, run on a redirection entry.
 */
#include <linux/linkage.h>
#include <asm/asm.h>
#include <asm/processor-flags.h>
#include <asm/unwind_hints.h>

#include "conform.h"

	.text

.macro CF_ENTER
	push	%rbx
	pushfq				/* the caller's RFLAGS, restored on the way out */
	push	%rdi			/* the state */
	pushq	CF_FLAGS_IN(%rdi)
	popfq
	mov	CF_IN(CF_RAX)(%rdi), %rax
	mov	CF_IN(CF_RBX)(%rdi), %rbx
	mov	CF_IN(CF_RCX)(%rdi), %rcx
	mov	CF_IN(CF_RDX)(%rdi), %rdx
	mov	CF_IN(CF_RSI)(%rdi), %rsi
	mov	CF_IN(CF_R8)(%rdi), %r8
	mov	CF_IN(CF_RDI)(%rdi), %rdi
.endm

/* Follows the instruction, which is at local label 1. */
.macro CF_LEAVE
	pushfq
	push	%rdi
	mov	16(%rsp), %rdi
	popq	CF_OUT(CF_RDI)(%rdi)
	popq	CF_FLAGS_OUT(%rdi)
	mov	%rax, CF_OUT(CF_RAX)(%rdi)
	mov	%rbx, CF_OUT(CF_RBX)(%rdi)
	mov	%rcx, CF_OUT(CF_RCX)(%rdi)
	mov	%rdx, CF_OUT(CF_RDX)(%rdi)
	mov	%rsi, CF_OUT(CF_RSI)(%rdi)
	mov	%r8, CF_OUT(CF_R8)(%rdi)
	movq	$-1, CF_TRAP(%rdi)
	jmp	3f
2:	mov	(%rsp), %rdi		/* the instruction faulted: RAX is the vector */
	mov	%rax, CF_TRAP(%rdi)
3:	pop	%rdi
	popfq
	pop	%rbx
	RET
	_ASM_EXTABLE_TYPE(1b, 2b, EX_TYPE_FAULT)
.endm

.macro CF_ENTRY name:req, attrs:req, moffs:req
	.pushsection .rodata, "a"
.Lcf_name_\name:
	.asciz	"\name"
	.popsection
	.pushsection .rodata.cf_forms, "a"
	.balign	8
	.quad	.Lcf_name_\name, cf_form_\name, \moffs
	.long	\attrs, 0
	.popsection
.endm

.macro FORM name:req, attrs:req, insn:vararg
	CF_ENTRY \name, \attrs, 0
SYM_FUNC_START_LOCAL(cf_form_\name)
	CF_ENTER
1:	\insn
	CF_LEAVE
SYM_FUNC_END(cf_form_\name)
.endm

.macro FORMP name:req, attrs:req, prefix:req, insn:vararg
	CF_ENTRY \name, \attrs, 0
SYM_FUNC_START_LOCAL(cf_form_\name)
	CF_ENTER
1:	.byte	\prefix
	\insn
	CF_LEAVE
SYM_FUNC_END(cf_form_\name)
.endm

.macro MOFFS name:req, attrs:req, bytes:vararg
	CF_ENTRY \name, (\attrs)|CF_MOFFS, .Lcf_moffs_\name
SYM_FUNC_START_LOCAL(cf_form_\name)
	CF_ENTER
1:	.byte	\bytes
.Lcf_moffs_\name:
	.quad	0
	CF_LEAVE
SYM_FUNC_END(cf_form_\name)
.endm

	.pushsection .rodata.cf_forms, "a"
	.balign	8
SYM_DATA_START(cf_forms_start)
SYM_DATA_END(cf_forms_start)
	.popsection

/*
 * Register values at the start (conform_mmio.c): EAX 0x00012871 (AH 0x28), EBX 0x00014863
 * (BH 0x48), ECX 2 unless CF_RCX says otherwise, EDX 0x00018093 (DH 0x80), ESI 0x0001003c
 * when not a pointer, R8D 0x00010054; the upper halves are 0x000100xx. RFLAGS: CF, ZF and OF
 * set. A byte or word store to the redirection window is ignored by the I/O APIC (and dropped
 * by Parapet): those forms are CF_WIN whatever they store.
 */

/* MOV stores: 88, 89, C6, C7; 8-, 16-, 32-, 64-bit; high-byte and REX-only registers */
FORM mov_st8,		CF_WIN,			mov %al,(%rdi)
FORM mov_st8_ah,	CF_WIN,			mov %ah,(%rdi)
FORM mov_st8_sil,	CF_WIN,			mov %sil,(%rdi)
FORM mov_st16,		CF_WIN,			mov %ax,(%rdi)
FORM mov_st32,		CF_WIN,			mov %eax,(%rdi)
FORM mov_st64,		CF_WIN|CF_WIDE,		mov %rax,(%rdi)
FORM mov_st32_r8,	CF_WIN,			mov %r8d,(%rdi)
FORM mov_st8_imm,	CF_WIN,			movb $0x3c,(%rdi)
FORM mov_st16_imm,	CF_WIN,			movw $0x2c5a,(%rdi)
FORM mov_st32_imm,	CF_WIN,			movl $0x10062,(%rdi)
FORM mov_st64_imm,	CF_WIN|CF_WIDE,		movq $0x10063,(%rdi)
FORM mov_st32_disp8,	CF_WIN|CF_BIAS8,	mov %eax,8(%rdi)
FORM mov_st32_disp32,	CF_WIN|CF_BIAS256,	mov %eax,0x100(%rdi)
FORM mov_st32_sib,	CF_WIN|CF_COUNT(2),	mov %eax,-8(%rdi,%rcx,4)

/* MOV loads: 8A, 8B */
FORM mov_ld8,		CF_LOAD,		mov (%rdi),%al
FORM mov_ld8_bh,	CF_LOAD,		mov (%rdi),%bh
FORM mov_ld8_sil,	CF_LOAD,		mov (%rdi),%sil
FORM mov_ld16,		CF_LOAD,		mov (%rdi),%ax
FORM mov_ld32,		CF_LOAD,		mov (%rdi),%eax
FORM mov_ld64,		CF_LOAD|CF_WIDE,	mov (%rdi),%rax
FORM mov_ld32_r8,	CF_LOAD,		mov (%rdi),%r8d
FORM mov_ld32_disp8,	CF_LOAD|CF_BIAS8,	mov 8(%rdi),%edx
FORM mov_ld32_disp32,	CF_LOAD|CF_BIAS256,	mov 0x100(%rdi),%edx

/* MOVZX 0F B6/B7, MOVSX 0F BE/BF, MOVSXD 63 */
FORM movzbw,		CF_LOAD,		movzbw (%rdi),%dx
FORM movzbl,		CF_LOAD,		movzbl (%rdi),%edx
FORM movzbq,		CF_LOAD,		movzbq (%rdi),%rdx
FORM movzwl,		CF_LOAD,		movzwl (%rdi),%edx
FORM movzwq,		CF_LOAD,		movzwq (%rdi),%r8
FORM movsbw,		CF_LOAD,		movsbw (%rdi),%dx
FORM movsbl,		CF_LOAD,		movsbl (%rdi),%edx
FORM movsbq,		CF_LOAD,		movsbq (%rdi),%rdx
FORM movswl,		CF_LOAD,		movswl (%rdi),%edx
FORM movswq,		CF_LOAD,		movswq (%rdi),%rdx
FORM movslq,		CF_LOAD,		movslq (%rdi),%rdx

/* MOV with a 64-bit absolute address (movabs): A0-A3, with and without FS */
MOFFS moffs_ld8,	CF_LOAD,		0xa0
MOFFS moffs_ld16,	CF_LOAD,		0x66, 0xa1
MOFFS moffs_ld32,	CF_LOAD,		0xa1
MOFFS moffs_ld64,	CF_LOAD|CF_WIDE,	0x48, 0xa1
MOFFS moffs_st8,	CF_WIN,			0xa2
MOFFS moffs_st16,	CF_WIN,			0x66, 0xa3
MOFFS moffs_st32,	CF_WIN,			0xa3
MOFFS moffs_st64,	CF_WIN|CF_WIDE,		0x48, 0xa3
MOFFS moffs_fs_ld32,	CF_LOAD|CF_FS,		0x64, 0xa1
MOFFS moffs_fs_st32,	CF_WIN|CF_FS,		0x64, 0xa3

/*
 * ALU with a memory destination and source: 00-3B, 80/81/83. On the redirection entry
 * 0x00010040: OR/AND EDX give 0x000180d3/0x00010000; the immediates 0x120, 0x1ff3f
 * (AND), 0xc and -16 (AND) keep bit 16 and a delivery mode of 0 or 1; ADD, XOR, SUB, ADC and
 * SBB of EDX, and SUB/SBB of 0x120, would unmask it.
 */
FORM add_m32_r32,	0,			add %edx,(%rdi)
FORM add_r32_m32,	CF_LOAD,		add (%rdi),%edx
FORM add_m32_i32,	CF_WIN,			addl $0x120,(%rdi)
FORM add_m32_i8,	CF_WIN,			addl $0xc,(%rdi)
FORM add_m8_i8,		CF_WIN,			addb $0xc,(%rdi)
FORM add_m8_dh,		CF_WIN,			add %dh,(%rdi)
FORM add_r8_m8,		CF_LOAD,		add (%rdi),%dl
FORM add_m16_i16,	CF_WIN,			addw $0x120,(%rdi)
FORM add_m64_i32,	CF_WIN|CF_WIDE,		addq $0x120,(%rdi)
FORM add_r64_m64,	CF_LOAD|CF_WIDE,	add (%rdi),%rdx
FORM or_m32_r32,	CF_WIN|CF_LOGIC,	or %edx,(%rdi)
FORM or_r32_m32,	CF_LOAD|CF_LOGIC,	or (%rdi),%edx
FORM or_m32_i32,	CF_WIN|CF_LOGIC,	orl $0x120,(%rdi)
FORM or_m32_i8,		CF_WIN|CF_LOGIC,	orl $0xc,(%rdi)
FORM or_m8_i8,		CF_WIN|CF_LOGIC,	orb $0xc,(%rdi)
FORM or_m8_r8,		CF_WIN|CF_LOGIC,	or %dl,(%rdi)
FORM or_r8_m8_ch,	CF_LOAD|CF_LOGIC,	or (%rdi),%ch
FORM and_m32_r32,	CF_WIN|CF_LOGIC,	and %edx,(%rdi)
FORM and_r32_m32,	CF_LOAD|CF_LOGIC,	and (%rdi),%edx
FORM and_m32_i32,	CF_WIN|CF_LOGIC,	andl $0x1ff3f,(%rdi)
FORM and_m32_i8,	CF_WIN|CF_LOGIC,	andl $-16,(%rdi)
FORM and_m8_i8,		CF_WIN|CF_LOGIC,	andb $0xf0,(%rdi)
FORM and_m8_r8,		CF_WIN|CF_LOGIC,	and %dl,(%rdi)
FORM and_m64_i8,	CF_WIN|CF_LOGIC|CF_WIDE, andq $-16,(%rdi)
FORM xor_m32_r32,	CF_LOGIC,		xor %edx,(%rdi)
FORM xor_r32_m32,	CF_LOAD|CF_LOGIC,	xor (%rdi),%edx
FORM xor_m32_i32,	CF_WIN|CF_LOGIC,	xorl $0x120,(%rdi)
FORM xor_m32_i8,	CF_WIN|CF_LOGIC,	xorl $0xc,(%rdi)
FORM xor_m8_i8,		CF_WIN|CF_LOGIC,	xorb $0xc,(%rdi)
FORM xor_m8_r8,		CF_WIN|CF_LOGIC,	xor %dl,(%rdi)
FORM sub_m32_r32,	0,			sub %edx,(%rdi)
FORM sub_r32_m32,	CF_LOAD,		sub (%rdi),%edx
FORM sub_m32_i32,	0,			subl $0x120,(%rdi)
FORM sub_m32_i8,	CF_WIN,			subl $0xc,(%rdi)
FORM sub_m8_i8,		CF_WIN,			subb $0xc,(%rdi)
FORM sub_m8_r8,		CF_WIN,			sub %dl,(%rdi)
FORM sub_m16_r16,	CF_WIN,			sub %dx,(%rdi)
FORM cmp_m32_r32,	CF_LOAD,		cmp %edx,(%rdi)
FORM cmp_r32_m32,	CF_LOAD,		cmp (%rdi),%edx
FORM cmp_m32_i32,	CF_LOAD,		cmpl $0x10040,(%rdi)
FORM cmp_m32_i8,	CF_LOAD,		cmpl $0x40,(%rdi)
FORM cmp_m8_i8,		CF_LOAD,		cmpb $0x40,(%rdi)
FORM cmp_m8_bh,		CF_LOAD,		cmp %bh,(%rdi)
FORM cmp_m16_i8,	CF_LOAD,		cmpw $0x40,(%rdi)
FORM cmp_m64_i32,	CF_LOAD|CF_WIDE,	cmpq $0x10040,(%rdi)
FORM adc_m32_r32,	0,			adc %edx,(%rdi)
FORM adc_m32_i32,	CF_WIN,			adcl $0x120,(%rdi)
FORM adc_m32_i8,	CF_WIN,			adcl $0xc,(%rdi)
FORM sbb_m32_r32,	0,			sbb %edx,(%rdi)
FORM sbb_m32_i8,	CF_WIN,			sbbl $0xc,(%rdi)

/* TEST 84/85, F6/F7 /0 */
FORM test_m32_r32,	CF_LOAD|CF_LOGIC,	test %edx,(%rdi)
FORM test_m32_i32,	CF_LOAD|CF_LOGIC,	testl $0x10040,(%rdi)
FORM test_m8_i8,	CF_LOAD|CF_LOGIC,	testb $0x40,(%rdi)
FORM test_m64_r64,	CF_LOAD|CF_LOGIC|CF_WIDE, test %rax,(%rdi)

/* NOT, NEG (F6/F7 /2, /3): NOTL/NEGL would unmask a redirection entry */
FORM not_m32,		0,			notl (%rdi)
FORM not_m8,		CF_WIN,			notb (%rdi)
FORM not_m64,		CF_WIDE,		notq (%rdi)
FORM neg_m32,		0,			negl (%rdi)
FORM neg_m8,		CF_WIN,			negb (%rdi)
FORM neg_m16,		CF_WIN,			negw (%rdi)

/* INC, DEC (FE/FF /0, /1) */
FORM inc_m32,		CF_WIN,			incl (%rdi)
FORM dec_m32,		CF_WIN,			decl (%rdi)
FORM inc_m8,		CF_WIN,			incb (%rdi)
FORM dec_m16,		CF_WIN,			decw (%rdi)
FORM inc_m64,		CF_WIN|CF_WIDE,		incq (%rdi)

/* XCHG (86/87, locked by definition), XADD, CMPXCHG, LOCK */
FORM xchg_m32,		CF_WIN,			xchg %eax,(%rdi)
FORM xchg_m8_dh,	CF_WIN,			xchg %dh,(%rdi)
FORM xchg_m16,		CF_WIN,			xchg %bx,(%rdi)
FORM xchg_m64,		CF_WIN|CF_WIDE,		xchg %rax,(%rdi)
FORM xadd_m32,		CF_WIN|CF_COUNT(2),	xadd %ecx,(%rdi)
FORM lock_xadd_m32,	CF_WIN|CF_COUNT(2),	lock xadd %ecx,(%rdi)
FORM lock_cmpxchg_m32,	CF_WIN,			lock cmpxchg %edx,(%rdi)
FORM lock_add_m32_i8,	CF_WIN,			lock addl $1,(%rdi)
FORM lock_or_m8_i8,	CF_WIN|CF_LOGIC,	lock orb $1,(%rdi)

/* BT, BTS, BTR, BTC: register (0F A3/AB/B3/BB) and immediate (0F BA) bit offsets; a register
 * offset of 37 addresses the next dword, 40 with a 64-bit operand bit 8 of its upper half */
FORM bt_m32_r32,	CF_LOAD|CF_BITOP|CF_COUNT(6),	bt %ecx,(%rdi)
FORM bt_m32_i8,		CF_LOAD|CF_BITOP,		btl $6,(%rdi)
FORM bt_m16_r16,	CF_LOAD|CF_BITOP|CF_COUNT(9),	bt %cx,(%rdi)
FORM bt_m64_r64_far,	CF_LOAD|CF_BITOP|CF_WIDE|CF_COUNT(40), bt %rcx,(%rdi)
FORM bts_m32_r32,	CF_WIN|CF_BITOP|CF_COUNT(5),	bts %ecx,(%rdi)
FORM bts_m32_i8,	CF_WIN|CF_BITOP,		btsl $3,(%rdi)
FORM bts_m32_r32_far,	CF_WIN|CF_BITOP|CF_COUNT(37),	bts %ecx,(%rdi)
FORM bts_m64_i8,	CF_WIN|CF_BITOP|CF_WIDE,	btsq $40,(%rdi)
FORM btr_m32_r32,	CF_WIN|CF_BITOP|CF_COUNT(6),	btr %ecx,(%rdi)
FORM btr_m32_i8,	CF_WIN|CF_BITOP,		btrl $6,(%rdi)
FORM btc_m32_r32,	CF_WIN|CF_BITOP|CF_COUNT(1),	btc %ecx,(%rdi)
FORM btc_m32_i8,	CF_WIN|CF_BITOP,		btcl $7,(%rdi)

/* MOVNTI 0F C3 */
FORM movnti_m32,	CF_WIN,			movnti %eax,(%rdi)
FORM movnti_m64,	CF_WIN|CF_WIDE,		movnti %rax,(%rdi)

/*
 * String instructions with and without REP (counts 2 and 3); the other operand is a RAM
 * buffer holding 0x00010063, 0x00010074, 0x00010085, 0x00010096. With CF_DF they run
 * downwards from the dword above the slot.
 */
FORM movsb_ld,		CF_LOAD|CF_STR_SRC,		movsb
FORM movsl_ld,		CF_LOAD|CF_STR_SRC,		movsl
FORM movsq_ld,		CF_LOAD|CF_STR_SRC|CF_WIDE,	movsq
FORM rep_movsl_ld,	CF_LOAD|CF_STR_SRC|CF_COUNT(2),	rep movsl
FORM rep_movsl_ld_df,	CF_LOAD|CF_STR_SRC|CF_DF|CF_COUNT(2), rep movsl
FORM fs_movsl_ld,	CF_LOAD|CF_STR_SRC|CF_FS,	movsl %fs:(%rsi),%es:(%rdi)
FORM movsb_st,		CF_WIN|CF_STR_DST,		movsb
FORM movsl_st,		CF_WIN|CF_STR_DST,		movsl
FORM movsq_st,		CF_WIN|CF_STR_DST|CF_WIDE,	movsq
FORM rep_movsl_st,	CF_WIN|CF_STR_DST|CF_COUNT(2),	rep movsl
FORM rep_movsl_st_df,	CF_WIN|CF_STR_DST|CF_DF|CF_COUNT(2), rep movsl
FORM rep_movsb_st,	CF_WIN|CF_STR_DST|CF_COUNT(3),	rep movsb
FORM stosb,		CF_WIN|CF_STR_DST,		stosb
FORM stosw,		CF_WIN|CF_STR_DST,		stosw
FORM stosl,		CF_WIN|CF_STR_DST,		stosl
FORM stosq,		CF_WIN|CF_STR_DST|CF_WIDE,	stosq
FORM rep_stosl,		CF_WIN|CF_STR_DST|CF_COUNT(2),	rep stosl
FORM rep_stosq,		CF_WIN|CF_STR_DST|CF_WIDE|CF_COUNT(2), rep stosq
FORM lodsb,		CF_LOAD|CF_STR_SRC,		lodsb
FORM lodsl,		CF_LOAD|CF_STR_SRC,		lodsl
FORM lodsq,		CF_LOAD|CF_STR_SRC|CF_WIDE,	lodsq
FORM rep_lodsl,		CF_LOAD|CF_STR_SRC|CF_COUNT(2),	rep lodsl
FORM cmpsl,		CF_LOAD|CF_STR_SRC,		cmpsl
FORM scasl,		CF_LOAD|CF_STR_DST,		scasl

/*
 * Prefixes. In 64-bit mode CS, DS, ES and SS overrides are ignored (base 0); FS is given the
 * target's page as its base (conform_mmio.c), GS is the kernel's per-CPU base. The 67 prefix
 * makes the address 32-bit: the pointer's upper half is set and must be ignored, and
 * 0x100(%edi) with EDI = offset - 0x100 wraps around 2^32. F3 on a store is XRELEASE.
 * (Real and 16-bit address sizes need 16-bit code segments a module cannot easily run;
 * Parapet's unit tests decode those.)
 */
FORMP ds_mov_st32,	CF_WIN,			0x3e, mov %eax,(%rdi)
FORM es_mov_ld32,	CF_LOAD,		mov %es:(%rdi),%eax
FORM ss_mov_st32,	CF_WIN,			mov %eax,%ss:(%rdi)
FORM cs_add_m32_i8,	CF_WIN,			addl $0xc,%cs:(%rdi)
FORMP ds_es_mov_st32,	CF_WIN,			0x3e, mov %eax,%es:(%rdi)
FORM fs_mov_st32,	CF_WIN|CF_FS,		mov %eax,%fs:(%rdi)
FORM fs_mov_ld32,	CF_LOAD|CF_FS,		mov %fs:(%rdi),%eax
FORM gs_mov_st32,	CF_WIN|CF_GS,		mov %eax,%gs:(%rdi)
FORM gs_add_m32_i8,	CF_WIN|CF_GS,		addl $0xc,%gs:(%rdi)
FORM a32_mov_st32,	CF_WIN|CF_FS|CF_A32,	mov %eax,%fs:(%edi)
FORM a32_mov_ld32,	CF_LOAD|CF_FS|CF_A32,	mov %fs:(%edi),%eax
FORM a32_mov_st8,	CF_WIN|CF_FS|CF_A32,	mov %al,%fs:(%edi)
FORM a32_mov_st16,	CF_WIN|CF_FS|CF_A32,	mov %ax,%fs:(%edi)
FORM a32_add_m32_i8,	CF_WIN|CF_FS|CF_A32,	addl $0xc,%fs:(%edi)
FORM a32_wrap_st32,	CF_WIN|CF_FS|CF_A32|CF_BIAS256, mov %eax,%fs:0x100(%edi)
FORM a32_wrap_ld32,	CF_LOAD|CF_FS|CF_A32|CF_BIAS256, mov %fs:0x100(%edi),%eax
FORM a32_lodsl,		CF_LOAD|CF_STR_SRC|CF_FS|CF_A32, lodsl %fs:(%esi),%eax
FORM xrelease_mov_st32,	CF_WIN,			xrelease mov %eax,(%rdi)

	.pushsection .rodata.cf_forms, "a"
SYM_DATA_START(cf_forms_end)
SYM_DATA_END(cf_forms_end)
	.popsection

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
