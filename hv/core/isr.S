/* Host exception entry: every vector pushes a uniform frame and calls trap_handler().
 * rdmsr_safe/wrmsr_safe live here so the #GP path can resume them at their fault label. */
	.text
	.code64

.macro STUB vec, has_error
	.align 16
	.if \has_error == 0
	pushq $0
	.endif
	pushq $\vec
	jmp trap_common
.endm

	.globl trap_stubs
	.align 16
trap_stubs:
	STUB 0, 0
	STUB 1, 0
	STUB 2, 0
	STUB 3, 0
	STUB 4, 0
	STUB 5, 0
	STUB 6, 0
	STUB 7, 0
	STUB 8, 1
	STUB 9, 0
	STUB 10, 1
	STUB 11, 1
	STUB 12, 1
	STUB 13, 1
	STUB 14, 1
	STUB 15, 0
	STUB 16, 0
	STUB 17, 1
	STUB 18, 0
	STUB 19, 0
	STUB 20, 0
	STUB 21, 1
	STUB 22, 0
	STUB 23, 0
	STUB 24, 0
	STUB 25, 0
	STUB 26, 0
	STUB 27, 0
	STUB 28, 0
	STUB 29, 1
	STUB 30, 1
	STUB 31, 0

trap_common:
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, %rdi
	call trap_handler
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rbp
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
	add $16, %rsp
	iretq

/* bool rdmsr_safe(u32 msr, u64 *val) */
	.globl rdmsr_safe, rdmsr_insn, msr_fault
rdmsr_safe:
	mov %edi, %ecx
rdmsr_insn:
	rdmsr
	shl $32, %rdx
	mov %eax, %eax
	or %rdx, %rax
	mov %rax, (%rsi)
	mov $1, %eax
	ret
/* bool wrmsr_safe(u32 msr, u64 val) */
	.globl wrmsr_safe, wrmsr_insn
wrmsr_safe:
	mov %edi, %ecx
	mov %esi, %eax
	mov %rsi, %rdx
	shr $32, %rdx
wrmsr_insn:
	wrmsr
	mov $1, %eax
	ret
msr_fault:
	xor %eax, %eax
	ret
