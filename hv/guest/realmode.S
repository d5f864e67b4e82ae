/*
 * Real-mode code that Parapet copies into the top of conventional memory (taken from the
 * BIOS data area's base-memory size, so INT 12h shrinks with it) before the guest starts:
 *   rm_boot   loads the boot drive's first sector to 0000:7C00 through INT 13h and jumps
 *             there with DL = drive, as a BIOS does;
 *   rm_int15  answers INT 15h E820, E801 and 88h from the edited memory map, and passes
 *             every other INT 15h call to the BIOS's own handler.
 * The data fields are filled in by guest/bios.c.
 */
#define OFF(x) ((x) - rm_blob_start)

	.section .rodata
	.code16
	.globl rm_blob_start, rm_blob_end, rm_boot, rm_int15
	.globl rm_old_int15, rm_boot_drive, rm_e820_count, rm_e801_kb, rm_e801_blocks, rm_ext_kb, rm_e820_table
rm_blob_start:

rm_boot:
	cli
	xor %ax, %ax
	mov %ax, %ss
	mov $0x7C00, %sp
	mov %ax, %ds
	mov %ax, %es
	sti
	mov $4, %si                     /* tries */
1:	mov $0x0201, %ax                /* read one sector */
	mov $0x0001, %cx                /* cylinder 0, sector 1 */
	mov %cs:OFF(rm_boot_drive), %dl
	xor %dh, %dh                    /* head 0 */
	mov $0x7C00, %bx
	int $0x13
	jnc 2f
	xor %ax, %ax                    /* reset the drive, try again */
	mov %cs:OFF(rm_boot_drive), %dl
	int $0x13
	dec %si
	jnz 1b
	mov $OFF(msg_read), %si
	jmp rm_fail
2:	cmpw $0xAA55, 0x7DFE
	je 3f
	mov $OFF(msg_sig), %si
	jmp rm_fail
3:	xor %ax, %ax
	xor %bx, %bx
	xor %cx, %cx
	xor %si, %si
	xor %di, %di
	xor %bp, %bp
	mov %cs:OFF(rm_boot_drive), %dl
	xor %dh, %dh
	ljmp $0, $0x7C00

rm_fail:                                /* print cs:si, then let the BIOS report a boot failure */
	push %cs
	pop %ds
4:	lodsb
	test %al, %al
	jz 5f
	mov $0x0E, %ah
	mov $0x0007, %bx
	int $0x10
	jmp 4b
5:	int $0x18
6:	hlt
	jmp 6b

rm_int15:
	cmp $0xE820, %eax
	jne not_e820
	cmp $0x534D4150, %edx           /* 'SMAP' */
	jne chain
	cmp %cs:OFF(rm_e820_count), %ebx
	jae e820_fail
	cmp $20, %ecx
	jb e820_fail
	push %ds
	push %si
	push %di
	push %cx
	push %cs
	pop %ds
	imul $20, %bx, %si
	add $OFF(rm_e820_table), %si
	mov $20, %cx
	cld
	rep movsb                       /* ds:si -> es:di */
	pop %cx
	pop %di
	pop %si
	pop %ds
	mov $0x534D4150, %eax
	mov $20, %ecx
	inc %ebx
	cmp %cs:OFF(rm_e820_count), %ebx
	jb ret_ok
	xor %ebx, %ebx                  /* that was the last entry */
	jmp ret_ok
e820_fail:
	mov $0x86, %ah                  /* function not supported */
	jmp ret_err
not_e820:
	cmp $0xE801, %ax
	jne 7f
	mov %cs:OFF(rm_e801_kb), %ax
	mov %ax, %cx
	mov %cs:OFF(rm_e801_blocks), %bx
	mov %bx, %dx
	jmp ret_ok
7:	cmp $0x88, %ah
	jne chain
	mov %cs:OFF(rm_ext_kb), %ax
	jmp ret_ok
chain:
	ljmp *%cs:OFF(rm_old_int15)
ret_ok:                                 /* clear CF in the caller's FLAGS */
	push %bp
	mov %sp, %bp
	andw $0xFFFE, 6(%bp)
	pop %bp
	iret
ret_err:                                /* set CF in the caller's FLAGS */
	push %bp
	mov %sp, %bp
	orw $1, 6(%bp)
	pop %bp
	iret

	.align 4
rm_old_int15:   .long 0                 /* offset:segment of the BIOS handler */
rm_e820_count:  .long 0
rm_e801_kb:     .short 0
rm_e801_blocks: .short 0
rm_ext_kb:      .short 0
rm_boot_drive:  .byte 0x80
msg_read:       .asciz "Parapet: cannot read the boot drive\r\n"
msg_sig:        .asciz "Parapet: the boot sector has no 55AA signature\r\n"
	.align 4
rm_e820_table:                          /* 20-byte entries follow the blob when copied */
rm_blob_end:
	.code64
