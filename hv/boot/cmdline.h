/*
 * The hypervisor command line: space-separated key=value options.
 *   log=e9 | com1..com4 | none   where the log goes (default e9); a COM port used for
 *                                 the log is hidden from the guest
 *   boot=0xNN                     BIOS drive the guest boots from (default 0x80)
 *   iommu=on | guest              on (default): Parapet takes the IOMMU (DMA isolation);
 *                                 guest: leave it, and its ACPI table, to the guest OS (its
 *                                 interrupt remapping, e.g. for Linux's x2APIC mode), with
 *                                 DMA isolation off
 * A first word without '=' is the image path some loaders prepend, and is skipped.
 */
#ifndef PARAPET_CMDLINE_H
#define PARAPET_CMDLINE_H

#include "core/log.h"

struct hv_config {
	struct log_config log;
	u8 boot_drive;
	bool iommu_to_guest;
};

/* Parse cmdline into cfg. On error returns false and writes a message into err. */
bool cmdline_parse(const char *cmdline, struct hv_config *cfg, char *err, size_t errlen);

#endif
