/* Starting the guest the way a BIOS boots an OS (see guest/realmode.S). */
#ifndef PARAPET_BIOS_H
#define PARAPET_BIOS_H

#include "mm/memmap.h"

#define BIOS_STUB_SIZE 2048 /* taken from the top of conventional memory */

/* Where a guest starts: real mode at cs:ip (a BIOS boot), or Linux's 32-bit boot protocol
 * entry (guest/linux.h): protected mode, paging off, flat segments, ESI = the zero page. */
struct guest_start {
	bool linux32;
	bool flat32;  /* 32-bit protected mode, flat 4 GiB segments, no paging, at eip
					   * (an ACPI X_Firmware_Waking_Vector) */
	u16 cs, ip;   /* real mode */
	u32 eip, esi; /* linux32 (eip: flat32 too) */
	u32 gdt;      /* linux32: a GDT with LX_BOOT_CS and LX_BOOT_DS, 32 bytes */
};

/* Install the stub and the INT 15h hook; carve the stub's memory in `map` (the guest's map). */
void bios_prepare(struct memmap *map, u8 boot_drive, struct guest_start *start);

#endif
