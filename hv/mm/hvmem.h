/*
 * Parapet's own memory: HV_REGION_SIZE bytes at the top of RAM below 4 GiB, reserved in the
 * guest's memory map and absent from the guest's nested page tables. The image moves there
 * from its load address at start, and runs at the same virtual addresses afterwards.
 */
#ifndef PARAPET_HVMEM_H
#define PARAPET_HVMEM_H

#include "boot/bootinfo.h"

struct hv_memory {
	u64 base, end; /* the hidden region [base, end) */
	u64 image_size;
	u64 phys_top;            /* identity maps cover [0, phys_top) */
	unsigned max_page_shift; /* PAGE_1G when the CPU has 1 GiB pages */
	struct memmap guest_map; /* the memory map the guest is shown */
};

extern struct hv_memory hvmem;

/* Choose the region, edit the guest's map, build host page tables and move there. */
void hvmem_setup(const struct boot_info *bi);

/* A host pointer to physical [pa, pa+len) when all of it lies outside the hidden region and
 * below phys_top (firmware tables, guest memory read at init), else NULL. */
const void *hvmem_outside(u64 pa, u64 len);

/* Page-table allocation from the region, for pt_map(). */
extern const struct pt_alloc hv_pt_alloc;

#endif
