/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Real-mode payload of the SIPI attack (see sipi.c). sipi.c copies the bytes from
 * parapet_sipi_payload to parapet_sipi_payload_end to the start of the page
 * PARAPET_SIPI_PAGE and starts an offline processor there with INIT and STARTUP IPIs, so it
 * runs at CS:IP = (PARAPET_SIPI_PAGE >> 4):0 with interrupts off. The code is position
 * independent: it reaches its data through CS, at the offsets of sipi_payload.h.
 *
 * It records what the processor can see: ECX of CPUID 0x80000001 (SVM support) and of CPUID 1
 * (OSXSAVE, with CR4 clear here), then EBX and EDX after VMMCALL VERSION (under Parapet: the
 * magic and the vcpu index; without a hypervisor VMMCALL raises #UD, which its own exception
 * handler records), and parks in HLT with interrupts off. Each marker is stored after the data
 * it vouches for.
 *
 * When the sender set PARAPET_SIPI_MODE to PARAPET_SIPI_MODE_NMI and the APIC is in x2APIC
 * mode (its ICR an MSR, reachable from real mode), it also sends itself an NMI before DONE;
 * its NMI handler, the first time, sends itself two more and waits inside. A processor blocks
 * NMIs until the handler's IRET, then delivers the one it latched and drops the other: two NMIs
 * taken (PARAPET_SIPI_NMIS), never two handlers at once (PARAPET_SIPI_NMI_DEPTH).
 *
 * The bytes live in .rodata: the kernel never executes them, only copies them.
 */
#include "sipi_payload.h"

	.section .rodata.parapet_sipi, "a"
	.balign 16
	.globl	parapet_sipi_payload
	.globl	parapet_sipi_payload_end

	.code16
parapet_sipi_payload:
	cli
	cld
	/* Data and a stack in this page. */
	mov	%cs, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$PARAPET_SIPI_STACK_TOP, %sp

	/*
	 * An interrupt vector table of our own, so that an exception (the #UD of VMMCALL without
	 * a hypervisor) lands in fault_handler instead of whatever the firmware left at
	 * address 0. Each entry is offset:segment; an NMI just returns.
	 */
	mov	$PARAPET_SIPI_IVT, %bx
	mov	$PARAPET_SIPI_IVT_VECTORS, %cx
1:	movw	$(fault_handler - parapet_sipi_payload), (%bx)
	mov	%ax, 2(%bx)
	add	$4, %bx
	loop	1b
	movw	$(nmi_handler - parapet_sipi_payload), PARAPET_SIPI_IVT + 2 * 4
	/* IDTR: limit, then the linear base CS * 16 + PARAPET_SIPI_IVT. */
	movw	$(PARAPET_SIPI_IVT_VECTORS * 4 - 1), PARAPET_SIPI_IDTR
	movzwl	%ax, %eax
	shll	$4, %eax
	addl	$PARAPET_SIPI_IVT, %eax
	movl	%eax, PARAPET_SIPI_IDTR + 2
	lidtl	PARAPET_SIPI_IDTR

	/* SVM support as this processor reports it: CPUID 0x80000001 ECX bit 2. */
	movl	$0x80000001, %eax
	xorl	%ecx, %ecx
	cpuid
	movl	%ecx, PARAPET_SIPI_ECX
	movl	$1, %eax
	xorl	%ecx, %ecx
	cpuid
	movl	%ecx, PARAPET_SIPI_ECX1
	movl	$PARAPET_SIPI_CPUID_MAGIC, PARAPET_SIPI_CPUID_DONE

	/* VMMCALL VERSION: EAX = 0, EBX = 0 (no magic), EDX = 0xFFFFFFFF (no vcpu). */
	xorl	%eax, %eax
	xorl	%ebx, %ebx
	xorl	%ecx, %ecx
	movl	$0xffffffff, %edx
vmmcall_insn:
	.byte	0x0f, 0x01, 0xd9
	movl	%ebx, PARAPET_SIPI_EBX
	movl	%edx, PARAPET_SIPI_EDX
	cmpl	$PARAPET_SIPI_MODE_NMI, PARAPET_SIPI_MODE
	jne	4f
	call	nmi_test
4:	movl	$PARAPET_SIPI_DONE_MAGIC, PARAPET_SIPI_DONE

park:
	cli
2:	hlt
	jmp	2b

	/* Any exception: the stack holds IP, CS, FLAGS of the faulting instruction. */
fault_handler:
	pop	%ax
	movzwl	%ax, %eax
	movl	%eax, PARAPET_SIPI_FAULT_IP
	cmpw	$(vmmcall_insn - parapet_sipi_payload), %ax
	jne	3f
	movl	$PARAPET_SIPI_FAULT_VMMCALL, PARAPET_SIPI_FAULT
	jmp	park
3:	movl	$PARAPET_SIPI_FAULT_OTHER, PARAPET_SIPI_FAULT
	jmp	park

	/* The NMI test: x2APIC mode only (IA32_APIC_BASE.EXTD). */
nmi_test:
	movl	$0x1b, %ecx
	rdmsr
	testl	$0x400, %eax
	jz	5f
	movl	$0x80f, %ecx		/* SVR: software-enable the APIC, which INIT disabled */
	movl	$0x1ff, %eax
	xorl	%edx, %edx
	wrmsr
	call	self_nmi
	call	spin
5:	ret

	/* An NMI to this processor: x2APIC ICR (MSR 0x830), delivery mode NMI, its own ID. */
self_nmi:
	movl	$0x802, %ecx
	rdmsr
	movl	%eax, %edx
	movl	$0x400, %eax
	movl	$0x830, %ecx
	wrmsr
	ret

spin:
	movl	$0x200000, %ecx
6:	decl	%ecx
	jnz	6b
	ret

nmi_handler:
	pushal
	incl	PARAPET_SIPI_NMIS
	incl	PARAPET_SIPI_NMI_NOW
	movl	PARAPET_SIPI_NMI_NOW, %eax
	cmpl	PARAPET_SIPI_NMI_DEPTH, %eax
	jbe	7f
	movl	%eax, PARAPET_SIPI_NMI_DEPTH
7:	cmpl	$1, PARAPET_SIPI_NMIS
	jne	8f
	call	self_nmi
	call	self_nmi
	call	spin
8:	decl	PARAPET_SIPI_NMI_NOW
	popal
	iret

	/* Pads the code up to the result area; the assembler fails if the code is longer. */
	.org	parapet_sipi_payload + PARAPET_SIPI_CODE_MAX, 0xf4
parapet_sipi_payload_end:
	.code64
