#include "guest/bios.h"
#include "core/panic.h"
#include "core/log.h"
#include "core/string.h"

/* BIOS data area and interrupt vector table (IBM PC/AT BIOS technical reference). */
#define IVT_INT15 (0x15 * 4)
#define BDA_BASE_KB 0x413 /* u16: KiB of conventional memory (INT 12h) */

extern char rm_blob_start[], rm_blob_end[], rm_boot[], rm_int15[];
extern char rm_old_int15[], rm_boot_drive[], rm_e820_count[], rm_e801_kb[], rm_e801_blocks[], rm_ext_kb[],
    rm_e820_table[];

struct e820_entry {
	u64 base, len;
	u32 type;
} __packed;

#define FIELD(dst, sym) ((dst) + ((sym)-rm_blob_start))

void bios_prepare(struct memmap *map, u8 boot_drive, struct guest_start *start)
{
	volatile u16 *base_kb = phys_ptr(BDA_BASE_KB);
	volatile u32 *int15 = phys_ptr(IVT_INT15);
	u16 kb = *base_kb;
	if (kb < 64 || kb > 640)
		panic("bios: BIOS data area reports %u KiB of base memory; not a PC BIOS?", kb);
	u16 new_kb = kb - BIOS_STUB_SIZE / 1024;
	u64 stub = (u64)new_kb * 1024;

	if (!memmap_carve(map, stub, BIOS_STUB_SIZE, E820_RESERVED))
		panic("bios: the memory map has too many entries to edit");
	u64 blob = (u64)(rm_blob_end - rm_blob_start);
	if (blob + (u64)map->n * sizeof(struct e820_entry) > BIOS_STUB_SIZE)
		panic("bios: %u memory map entries do not fit the E820 table", map->n);

	u8 *dst = phys_ptr(stub);
	memcpy(dst, rm_blob_start, blob);
	struct e820_entry *t = (struct e820_entry *)FIELD(dst, rm_e820_table);
	for (u32 i = 0; i < map->n; i++)
		t[i] = (struct e820_entry){ map->e[i].base, map->e[i].len, map->e[i].type };
	*(u32 *)FIELD(dst, rm_e820_count) = map->n;
	memmap_legacy_sizes(map, (u16 *)FIELD(dst, rm_e801_kb), (u16 *)FIELD(dst, rm_e801_blocks),
	    (u16 *)FIELD(dst, rm_ext_kb));
	*FIELD(dst, rm_boot_drive) = boot_drive;
	*(u32 *)FIELD(dst, rm_old_int15) = *int15;

	u16 seg = (u16)(stub >> 4);
	*int15 = ((u32)seg << 16) | (u16)(rm_int15 - rm_blob_start);
	*base_kb = new_kb;
	start->cs = seg;
	start->ip = (u16)(rm_boot - rm_blob_start);
	LOG("bios: stub at %lx, base memory %u -> %u KiB, INT 15h hooked, boot drive %x\n", stub, kb, new_kb,
	    boot_drive);
}
