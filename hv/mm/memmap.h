/*
 * The physical memory map in BIOS E820 form (ACPI spec, "System Address Map Interfaces").
 * Parapet edits the firmware's map so its own memory shows as reserved, never as a gap:
 * every byte that was RAM stays either usable or reserved.
 */
#ifndef PARAPET_MEMMAP_H
#define PARAPET_MEMMAP_H

#include "core/types.h"

enum e820_type {
	E820_RAM = 1,
	E820_RESERVED = 2,
	E820_ACPI = 3,
	E820_NVS = 4,
	E820_UNUSABLE = 5,
};

#define MEMMAP_MAX 128

struct memmap_entry {
	u64 base;
	u64 len;
	u32 type;
};

struct memmap {
	u32 n;
	struct memmap_entry e[MEMMAP_MAX];
};

struct range {
	u64 base, end; /* [base, end) */
};

/* Append one entry; false when the map is full. Zero-length entries are dropped. */
bool memmap_add(struct memmap *m, u64 base, u64 len, u32 type);

/* Sort by base address (stable). */
void memmap_sort(struct memmap *m);

/* Turn every RAM byte in [base, base+len) into `type`, splitting entries; false when full. */
bool memmap_carve(struct memmap *m, u64 base, u64 len, u32 type);

/*
 * Highest `size`-byte block aligned to `align`, inside one RAM entry, ending at or below
 * `limit`, overlapping none of the `nexcl` ranges in `excl`. False when there is none.
 */
bool memmap_find_top(const struct memmap *m, u64 size, u64 align, u64 limit, const struct range *excl, unsigned nexcl,
    u64 *out);

/* True when every byte of [base, base+len) is RAM in the map (len > 0, no wrap). */
bool memmap_is_ram(const struct memmap *m, u64 base, u64 len);
/* Do entries of any type cover every byte of [base, base + len)? */
bool memmap_covers(const struct memmap *m, u64 base, u64 len);

/*
 * Sizes the legacy BIOS calls report, from the map:
 *   INT 15h E801: KiB of contiguous RAM from 1 MiB up to 16 MiB, and 64 KiB blocks of
 *   contiguous RAM from 16 MiB up to the first hole below 4 GiB;
 *   INT 15h AH=88h: KiB of contiguous RAM from 1 MiB, at most 0xFFFF.
 */
void memmap_legacy_sizes(const struct memmap *m, u16 *e801_kb, u16 *e801_blocks, u16 *ext_kb);

#endif
