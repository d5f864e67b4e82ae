/*
 * Multiboot v1 and v2 headers and the 32-bit entry: build boot page tables (identity map of
 * the low 4 GiB, and KERNEL_VMA + x -> x), enter long mode, jump to the 64-bit C code.
 * Both headers use the a.out-kludge / address tag, so loaders copy the file as a flat image.
 */
#include "boot/layout.h"

#define MB1_MAGIC 0x1BADB002
#define MB1_FLAGS ((1 << 0) | (1 << 1) | (1 << 16))
#define MB2_MAGIC 0xE85250D6

	.section .multiboot, "a"
	.align 4
mb1_header:
	.long MB1_MAGIC
	.long MB1_FLAGS
	.long -(MB1_MAGIC + MB1_FLAGS)
	.long mb1_header            /* header_addr */
	.long __load_start          /* load_addr */
	.long __load_end            /* load_end_addr */
	.long __bss_end_phys        /* bss_end_addr */
	.long entry32               /* entry_addr */

	.align 8
mb2_header:
	.long MB2_MAGIC
	.long 0                     /* architecture: i386 protected mode */
	.long mb2_header_end - mb2_header
	.long -(MB2_MAGIC + (mb2_header_end - mb2_header))
	.align 8
	.short 2, 0                 /* address tag */
	.long 24
	.long mb2_header
	.long __load_start
	.long __load_end
	.long __bss_end_phys
	.align 8
	.short 3, 0                 /* entry address tag */
	.long 12
	.long entry32
	.align 8
	.short 0, 0                 /* end tag */
	.long 8
mb2_header_end:

	.section .boot.text, "ax"
	.code32
	.globl entry32
entry32:
	cli
	cld
	mov $boot_stack_top, %esp
	mov %eax, %edi              /* magic -> first C argument */
	mov %ebx, %esi              /* information structure -> second */

	/* Long mode available? */
	mov $0x80000000, %eax
	cpuid
	cmp $0x80000001, %eax
	jb no_long_mode
	mov $0x80000001, %eax
	cpuid
	test $(1 << 29), %edx
	jz no_long_mode

	/* PML4[0] -> pdpt_low (identity 0..4G with 2M pages); PML4[511] -> pdpt_high. */
	movl $(boot_pdpt_low + 3), boot_pml4
	movl $(boot_pdpt_high + 3), boot_pml4 + 511*8
	/* pdpt_low[i] -> boot_pd + i*4096, i = 0..3 */
	mov $boot_pdpt_low, %ebx
	mov $boot_pd, %eax
	or $3, %eax
	xor %ecx, %ecx
1:	mov %eax, (%ebx, %ecx, 8)
	add $4096, %eax
	inc %ecx
	cmp $4, %ecx
	jb 1b
	/* pdpt_high[510] -> boot_pd (KERNEL_VMA + x maps to x for x < 1 GiB) */
	mov $boot_pdpt_high, %ebx
	mov $boot_pd, %eax
	or $3, %eax
	mov %eax, 510*8(%ebx)
	/* 2048 PDEs of 2 MiB: identity 0..4G */
	mov $boot_pd, %ebx
	mov $0x83, %eax
	xor %ecx, %ecx
1:	mov %eax, (%ebx, %ecx, 8)
	movl $0, 4(%ebx, %ecx, 8)
	add $0x200000, %eax
	inc %ecx
	cmp $2048, %ecx
	jb 1b

	/* crypto/ uses SSE (AES-NI) and saves the guest's SIMD state with FXSAVE, or XSAVE for
	 * VAES: OSFXSR and OSXMMEXCPT always, OSXSAVE when the CPU has XSAVE (CPUID.1:ECX[26]). */
	mov $1, %eax
	cpuid
	mov %cr4, %eax
	or $((1 << 5) | (1 << 9) | (1 << 10)), %eax  /* PAE, OSFXSR, OSXMMEXCPT */
	test $(1 << 26), %ecx
	jz 4f
	or $(1 << 18), %eax         /* OSXSAVE */
4:	mov %eax, %cr4
	mov $boot_pml4, %eax
	mov %eax, %cr3
	mov $0xC0000080, %ecx       /* EFER.LME */
	rdmsr
	or $(1 << 8), %eax
	and $~(1 << 14), %eax       /* FFXSR off: FXSAVE must save the xmm registers (crypto/) */
	wrmsr
	mov %cr0, %eax
	and $~((1 << 2) | (1 << 3)), %eax  /* EM, TS clear: SSE usable (crypto/) */
	or $0x80000003, %eax        /* PG | MP | PE */
	mov %eax, %cr0
	lgdt boot_gdtr
	ljmp $0x08, $entry64_low

no_long_mode:
	mov $no_lm_msg, %esi
1:	lodsb
	test %al, %al
	jz 2f
	outb %al, $0xE9
	jmp 1b
2:	cli
	hlt
	jmp 2b

	.code64
entry64_low:
	mov $0x10, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	movabs $entry64, %rax
	jmp *%rax

	.section .boot.data, "aw"
	.align 8
boot_gdt:
	.quad 0
	.quad GDT_CODE64            /* 0x08 */
	.quad GDT_DATA              /* 0x10 */
boot_gdtr:
	.short boot_gdtr - boot_gdt - 1
	.long boot_gdt
no_lm_msg:
	.asciz "parapet: panic: this CPU has no long mode\n"

	.section .boot.bss, "aw", @nobits
	.align 4096
boot_pml4:      .space 4096
boot_pdpt_low:  .space 4096
boot_pdpt_high: .space 4096
boot_pd:        .space 4 * 4096
	.space 4096
boot_stack_top:

	.text
	.code64
	.globl entry64
entry64:
	movabs $(bsp_stack + HV_STACK_SIZE), %rsp
	mov %edi, %edi
	mov %esi, %esi
	call hv_main
1:	cli
	hlt
	jmp 1b

	.bss
	.align 16
	.globl bsp_stack
bsp_stack:
	.space HV_STACK_SIZE
