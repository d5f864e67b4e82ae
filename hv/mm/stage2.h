/*
 * The guest-physical (second-stage) tables the CPU walks after the guest's own: AMD's nested
 * page tables or Intel's EPT, one builder (mm/pagetable.c) and the backend's format
 * (pt_x86 or pt_ept). Guest-physical = host-physical for all memory, RAM and MMIO, except
 * Parapet's region, every page of which maps to one decoy page: a guest reading there sees the
 * decoy, a guest writing there changes only the decoy.
 */
#ifndef PARAPET_STAGE2_H
#define PARAPET_STAGE2_H

#include "mm/pagetable.h"

/* Build the tables in format f; returns the root's physical address. */
u64 stage2_build(const struct pt_format *f);

/*
 * Set the guest's access to the 4 KiB page at gpa. Splits large pages as needed (the new table
 * maps the same memory before it is linked, so a processor walking the tables meanwhile sees
 * either). The entry changes in one store. No TLB is flushed: vmm/mmio.c serialises the
 * callers and flushes every CPU's (cpus_flush_stage2) when the guest runs. False when the page
 * is Parapet's region or beyond the tables, or a table cannot be allocated.
 */
bool stage2_trap(u64 gpa, enum pt_access access);

/* Whether the tables let the guest read (or write) gpa now. A fault they no longer explain
 * was taken before a change of the tables (vmm/mmio.c). */
bool stage2_allows(u64 gpa, bool write);

#endif
