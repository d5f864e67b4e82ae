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

/*
 * Memory a device may be told to use for the guest (command lists, descriptors, buffers): guest
 * RAM, and also what firmware keeps for itself in RAM, which its own disk driver uses (SeaBIOS
 * puts its AHCI lists in the reserved top of low RAM): every range of the guest's map of any type
 * that lies below `limit` (the lowest MMIO: ECAM, BARs, I/O APIC), except Parapet's region
 * [hidden_base, hidden_end) and the legacy VGA window A0000h-BFFFFh. Until set: RAM only.
 */
void gmem_set_firmware(u64 limit, u64 hidden_base, u64 hidden_end);
void *gmem_map_dma(u64 gpa, u64 len);

/* A device's buffer list, as a driver checked it: entry i is [addr, addr + len). */
struct gmem_sg {
	u64 addr;
	u32 len;
	u32 flags; /* the driver's */
};

/* Copy len bytes between buf and the buffers of sg[0..n) from byte offset off of the list, each
 * buffer reached through map (gmem_map or gmem_map_dma). False (copying nothing more) when a
 * buffer no longer maps. */
bool gmem_sg_copy(const struct gmem_sg *sg, unsigned n, u64 off, u8 *buf, u64 len, bool to_guest,
    void *(*map)(u64 gpa, u64 len));

#endif
