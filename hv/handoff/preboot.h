/*
 * Two-step execution (SECURWARE'09): when a Linux kernel is among the boot modules, Parapet
 * first runs it as the preboot guest, which authenticates the user and obtains the disk keys,
 * then hands Parapet one policy record with VMMCALL HANDOFF (vmm/vmmcall.h). Parapet accepts
 * exactly one, during the preboot phase, from CPL 0 on the boot CPU; it copies and validates the
 * record, wipes every page of RAM the preboot guest had, puts back the low memory and the
 * device state the BIOS left (PICs, PIT, local APIC, I/O APIC, IDE controller, the other CPUs
 * waiting for STARTUP) and boots the target OS through INT 13h with the keys in force.
 *
 * Boot modules: the kernel (a bzImage; its module command line is the kernel's) and right
 * after it its initrd. See docs/preboot.md.
 */
#ifndef PARAPET_PREBOOT_H
#define PARAPET_PREBOOT_H

#include "boot/bootinfo.h"
#include "guest/bios.h"

/* Where Parapet puts the preboot kernel's zero page, command line and boot GDT (conventional
 * memory, saved before and restored after the preboot guest). */
#define PREBOOT_ZERO_PAGE 0x10000
#define PREBOOT_CMDLINE 0x11000
#define PREBOOT_GDT 0x11800
#define PREBOOT_LOW_BYTES 0xA0000 /* conventional memory saved and restored: 640 KiB */

/* Is there a preboot kernel among the modules? (Its index in *kernel.) */
bool preboot_find(const struct boot_info *bi, unsigned *kernel);

/* On the BSP, after the BIOS stub is installed and the other CPUs are held: save low memory
 * and the firmware's device state, load the kernel and point *start at its entry. `bios` is
 * where the target OS starts after the handoff. */
void preboot_prepare(const struct boot_info *bi, unsigned kernel, const struct guest_start *bios,
    struct guest_start *start);

#endif
