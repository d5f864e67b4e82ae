/*
 * Starting a Linux kernel the way a boot loader does, through the 32-bit entry of the x86
 * boot protocol (the kernel's Documentation/arch/x86/boot.rst): the protected-mode part of a
 * bzImage is copied to an aligned address, and the "zero page" (struct boot_params) carries
 * the setup header, the memory map, the command line and the initrd. The kernel is entered
 * with paging off, flat 4 GiB segments __BOOT_CS/__BOOT_DS, interrupts off and ESI = the
 * zero page. Parapet uses it for the preboot guest (handoff/preboot.c).
 */
#ifndef PARAPET_LINUX_H
#define PARAPET_LINUX_H

#include "mm/memmap.h"

/* Offsets in the bzImage file, which are also offsets in struct boot_params. */
#define LX_SETUP_SECTS 0x1F1      /* u8: 512-byte setup sectors after the boot sector (0 = 4) */
#define LX_BOOT_FLAG 0x1FE        /* u16: 0xAA55 */
#define LX_JUMP 0x200             /* u8 at 0x201: the setup header ends at 0x202 + this */
#define LX_HEADER 0x202           /* u32: "HdrS" */
#define LX_VERSION 0x206          /* u16: boot protocol version */
#define LX_TYPE_OF_LOADER 0x210   /* u8: 0xFF = a loader without an assigned id */
#define LX_LOADFLAGS 0x211        /* u8: bit 0 LOADED_HIGH (protected-mode code at 1 MiB+) */
#define LX_CODE32_START 0x214     /* u32: where the protected-mode code was loaded */
#define LX_RAMDISK_IMAGE 0x218    /* u32 */
#define LX_RAMDISK_SIZE 0x21C     /* u32 */
#define LX_CMD_LINE_PTR 0x228     /* u32 */
#define LX_INITRD_ADDR_MAX 0x22C  /* u32: highest byte the initrd may occupy */
#define LX_KERNEL_ALIGNMENT 0x230 /* u32 */
#define LX_RELOCATABLE 0x234      /* u8 */
#define LX_CMDLINE_SIZE 0x238     /* u32: longest command line, without its NUL */
#define LX_INIT_SIZE 0x260        /* u32: bytes the kernel needs from its load address */
#define LX_HDR_END_MAX 0x290      /* the setup header ends by here in boot_params */
#define LX_E820_ENTRIES 0x1E8     /* u8, in boot_params */
#define LX_E820_TABLE 0x2D0       /* boot_params: 20-byte entries */
#define LX_E820_MAX 128
#define LX_ZERO_PAGE_SIZE 4096

#define LX_HDRS_MAGIC 0x53726448u /* "HdrS" */
#define LX_MIN_VERSION 0x020Au    /* 2.10: init_size, pref_address */
#define LX_LOADED_HIGH 0x01u

/* The boot GDT's selectors: entries 2 and 3 (boot.rst, "32-bit boot protocol"). */
#define LX_BOOT_CS 0x10
#define LX_BOOT_DS 0x18

struct linux_image {
	u64 setup_bytes; /* file offset of the protected-mode code */
	u64 code_bytes;  /* its length */
	u64 init_size;   /* bytes needed at the load address (>= code_bytes) */
	u64 align;       /* load address alignment */
	u64 initrd_max;  /* highest address the initrd may end at (exclusive) */
	u64 cmdline_max; /* longest command line, NUL excluded */
};

/* Check a bzImage and read what loading it needs. Returns NULL, or what is wrong. */
const char *linux_parse(const u8 *img, u64 len, struct linux_image *out);

/* Does the file start like a bzImage (boot flag and "HdrS")? */
bool linux_is_bzimage(const u8 *img, u64 len);

/*
 * Fill the zero page `zp` (LX_ZERO_PAGE_SIZE bytes) for a kernel loaded at `load`: the
 * image's setup header, the memory map `m` (at most LX_E820_MAX entries), the command line
 * at `cmdline_pa` and the initrd [initrd_pa, initrd_pa + initrd_len). Returns NULL or why not.
 */
const char *linux_zero_page(u8 *zp, const u8 *img, const struct linux_image *li, const struct memmap *m, u64 load,
    u64 cmdline_pa, u64 initrd_pa, u64 initrd_len);

#endif
