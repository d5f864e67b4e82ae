/*
 * Nested page tables (AMD "NPT", Intel "EPT" later): guest-physical = host-physical for all
 * memory, RAM and MMIO, except Parapet's region, every page of which maps to one decoy page.
 * A guest reading there sees the decoy, a guest writing there changes only the decoy.
 */
#ifndef PARAPET_NPT_H
#define PARAPET_NPT_H

#include "core/types.h"

/* Build the tables; returns the root's physical address. */
u64 npt_build(void);

/* What the guest may do with a page. */
enum npt_access {
	NPT_RW,   /* mapped */
	NPT_RO,   /* writes fault: a write trap */
	NPT_NONE, /* every access faults: a trap page */
};

/*
 * Set the guest's access to the 4 KiB page at gpa. Splits large pages as needed (the new table
 * maps the same memory before it is linked, so a processor walking the tables meanwhile sees
 * either). The entry changes in one store. No nested TLB is flushed: vmm/mmio.c serialises the
 * callers and flushes every CPU's (cpus_flush_npt) when the guest runs. False when the page is
 * Parapet's region or beyond the tables, or a table cannot be allocated.
 */
bool npt_trap(u64 gpa, enum npt_access access);

/* Whether the nested page tables let the guest read (or write) gpa now. A nested page fault
 * they no longer explain was taken before a change of the tables (vmm/mmio.c). */
bool npt_allows(u64 gpa, bool write);

#endif
