/*
 * Sleep, reset and power-off under Parapet (DESIGN.md §4, invariants 2 and 6).
 *
 * Every way the guest can reset the machine or turn it off is intercepted, and Parapet wipes
 * its keys before it performs it: the reset control register (port 0xCF9, bit 2), port 0x92
 * bit 0 (fast reset), the 8042 keyboard controller's pulse-reset commands (0xF0-0xFE with
 * bit 0 clear) and its output port (command 0xD1, then a byte with bit 0 clear at port 0x60),
 * the FADT's RESET_REG (I/O or memory space), a triple fault, and ACPI S4/S5 (PM1x_CNT with
 * SLP_EN and the SLP_TYP the DSDT gives \_S4 or \_S5). Before the wipe every other CPU is
 * stopped in the host, so no CPU uses a key while it goes.
 *
 * ACPI S3 (and S2) is performed by Parapet itself: with every other CPU stopped and the ACPI
 * tables checked to lead the firmware to the FACS they named at init, Parapet keeps the
 * guest's waking vector, points the FACS at its own real-mode entry (boot/ap_trampoline.S),
 * and writes PM1x_CNT. The firmware wakes the boot CPU into Parapet, which takes long mode,
 * SVM, the IOMMU and the log sink again, restarts the other CPUs into its wait-for-SIPI, and
 * enters the guest at its waking vector in the state ACPI gives (real mode at
 * vector >> 4 : vector & 0xF, or flat 32-bit protected mode at X_Firmware_Waking_Vector).
 * S1 keeps the processor context: Parapet performs it and continues.
 *
 * A sleep Parapet cannot perform safely (an SLP_TYP the DSDT does not list, the tables or the
 * FACS changed since init, a 64-bit waking vector, a CPU that did not stop, a platform that did
 * not sleep) is refused: the write is dropped and PM1 status reads WAK_STS set, which ACPI
 * code takes as a wake-up (a failed transition); the log says why.
 */
#ifndef PARAPET_POWER_H
#define PARAPET_POWER_H

#include "vmm/vcpu.h"

struct power_stats {
	u64 resumes; /* S3 resumes completed */
	u64 refused; /* sleep requests refused */
};
extern struct power_stats power_stats;

/* Read the FADT and the DSDT's sleep types, hook the PM1 control and status ports, the reset
 * ports and the reset register. On the BSP before the guest runs. */
void power_init(void);

/* The guest's access to ports 0xCF8-0xCFB other than the dword CONFIG_ADDRESS (io/pci.c
 * hooks those ports): 0xCF9 is the reset control register. */
u32 power_cf9_io(u16 port, unsigned size, bool in, u32 val);

/* A triple fault (shutdown) in the guest: wipe, then reset the machine. */
__noreturn void power_guest_shutdown(struct vcpu *v);

/* Wipe every key Parapet holds (storage service key schedules); after every other CPU has
 * stopped. Exposed for the reset paths and tests. */
void power_wipe(struct vcpu *v, const char *why);

#endif
