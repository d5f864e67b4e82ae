/*
 * Bus-master descriptor tables: validating the guest's, and building the shadow tables the
 * device really uses. The guest's table is read once, checked entry by entry and copied; the
 * device never sees the guest's table, so rewriting it mid-transfer changes nothing.
 */
#ifndef PARAPET_ATA_PRD_H
#define PARAPET_ATA_PRD_H

#include "drivers/ata/ata.h"
#include "vmm/gmem.h"

struct prd_list {
	unsigned n;
	u64 total; /* bytes described */
	struct gmem_sg e[PRD_MAX_ENTRIES];
};

/*
 * Read the guest's PRD table at guest-physical table_pa into *l, checking: the table is dword
 * aligned, guest RAM, ends (EOT) before a 64 KiB boundary; every buffer is word aligned with an
 * even length, does not cross a 64 KiB boundary, and lies wholly in guest RAM (never Parapet's
 * memory or MMIO). Returns NULL, or what is wrong.
 */
const char *prd_fetch(u64 table_pa, struct prd_list *l);

/* Copy len bytes between buf and the guest buffers of l, from byte offset off of the list.
 * Returns false (copying nothing more) if a buffer is no longer guest RAM. */
static inline bool prd_copy(const struct prd_list *l, u64 off, u8 *buf, u64 len, bool to_guest)
{
	return gmem_sg_copy(l->e, l->n, off, buf, len, to_guest, gmem_map);
}

/* Describe [pa, pa + len) for the device in at most max entries, none crossing 64 KiB.
 * Returns the number of entries (the last has EOT), or 0 if max is too small. */
unsigned prd_build(struct prd *table, unsigned max, u64 pa, u64 len);

/* The validated guest list as a device table (pass-through DMA to the guest's own buffers). */
void prd_emit(const struct prd_list *l, struct prd *table);

#endif
