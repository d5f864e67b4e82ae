/*
 * The first code an application processor runs. vmm/cpus.c copies this blob to a page below
 * 1 MiB, fills in its parameters and sends STARTUP with that page's number: the processor
 * starts here in real mode at page:0000, loads the boot GDT, enables PAE, the host's page
 * tables, long mode and paging in one step (as the BSP's entry.S does: EFER.FFXSR off, SSE
 * usable), jumps to 64-bit code and calls entry(arg) on its own stack.
 * Everything is addressed relative to the blob, so it runs at any page.
 */
#include "boot/layout.h"

	.section .rodata
	.globl ap_tramp, ap_tramp_end, ap_tramp_gdt, ap_tramp_gdtr, ap_tramp_jump, ap_tramp_long, ap_tramp_params, ap_tramp_ran
	.align 16
	.code16
ap_tramp:
	cli
	cld
	mov %cs, %ax
	mov %ax, %ds
	movl $1, tr_ran - ap_tramp   /* seen by vmm/cpus.c when a processor does not come */
	lgdtl ap_tramp_gdtr - ap_tramp
	movl tr_cr4 - ap_tramp, %eax
	mov %eax, %cr4
	movl tr_cr3 - ap_tramp, %eax
	mov %eax, %cr3
	mov $0xC0000080, %ecx       /* EFER: LME on, FFXSR off */
	rdmsr
	or $(1 << 8), %eax
	and $~(1 << 14), %eax
	wrmsr
	mov %cr0, %eax
	and $~((1 << 2) | (1 << 3)), %eax  /* EM, TS clear */
	or $0x80000003, %eax        /* PG | MP | PE */
	mov %eax, %cr0
	ljmpl *(ap_tramp_jump - ap_tramp)

	.code64
ap_tramp_long:
	mov $0x10, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	xor %eax, %eax
	mov %eax, %fs
	mov %eax, %gs
	mov tr_stack(%rip), %rsp
	mov tr_arg(%rip), %rdi
	jmp *tr_entry(%rip)

	.align 8
ap_tramp_gdt:
	.quad 0
	.quad GDT_CODE64            /* 0x08 */
	.quad GDT_DATA              /* 0x10 */
ap_tramp_gdtr:
	.short 3 * 8 - 1
	.long 0                     /* filled in: the page + (ap_tramp_gdt - ap_tramp) */
	.align 4
ap_tramp_jump:
	.long 0                     /* filled in: the page + (ap_tramp_long - ap_tramp) */
	.short 0x08

	.align 8
ap_tramp_params:                    /* struct ap_params in vmm/cpus.c */
tr_cr3:   .long 0
tr_cr4:   .long 0
tr_stack: .quad 0
tr_entry: .quad 0
tr_arg:   .quad 0
ap_tramp_ran:
tr_ran:   .long 0
ap_tramp_end:
	.code64
