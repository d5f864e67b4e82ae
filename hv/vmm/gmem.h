/*
 * Guest memory access by guest-physical address. The guest's physical address space equals the
 * machine's, so a checked guest address is also a host pointer (identity map); only RAM that the
 * guest's own memory map calls usable is ever accessed, never Parapet's region or MMIO.
 */
#ifndef PARAPET_GMEM_H
#define PARAPET_GMEM_H

#include "mm/memmap.h"

void gmem_init(const struct memmap *guest_map);
/* Host pointer to [gpa, gpa+len) when all of it is guest RAM, else NULL. */
void *gmem_map(u64 gpa, u64 len);

#endif
