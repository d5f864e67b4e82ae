/* Starting the guest the way a BIOS boots an OS (see guest/realmode.S). */
#ifndef PARAPET_BIOS_H
#define PARAPET_BIOS_H

#include "mm/memmap.h"

#define BIOS_STUB_SIZE 2048           /* taken from the top of conventional memory */

struct guest_start {
	u16 cs, ip;                       /* real-mode entry point */
};

/* Install the stub and the INT 15h hook; carve the stub's memory in `map` (the guest's map). */
void bios_prepare(struct memmap *map, u8 boot_drive, struct guest_start *start);

#endif
