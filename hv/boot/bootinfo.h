/*
 * What the boot loader tells us, copied out of the loader's structures (Multiboot 0.6.96
 * and Multiboot2 specifications) into the hypervisor's own memory before anything else.
 */
#ifndef PARAPET_BOOTINFO_H
#define PARAPET_BOOTINFO_H

#include "mm/memmap.h"

#define MB1_BOOT_MAGIC 0x2BADB002u
#define MB2_BOOT_MAGIC 0x36D76289u

#define BOOT_CMDLINE_MAX 512
#define BOOT_MODS_MAX 8

struct boot_module {
	u64 start, end;   /* physical [start, end) */
	char string[256]; /* the module's command line (a kernel's arguments) */
};

struct boot_info {
	u32 magic;
	char cmdline[BOOT_CMDLINE_MAX];
	struct memmap map; /* the firmware's memory map as given */
	unsigned nmods;
	struct boot_module mods[BOOT_MODS_MAX];
	struct range mbi; /* where the loader's information structure lies */
};

/*
 * Parse the loader's information at physical address `mbi` (read through `ptr`, which maps a
 * physical address to where the host can read it). Returns NULL, or a message naming the problem.
 */
const char *bootinfo_parse(u32 magic, u64 mbi, const void *(*ptr)(u64 pa), struct boot_info *bi);

#endif
