/*
 * ECAM, the memory-mapped PCI configuration space (PCIe base spec §7.2.2): the window is found
 * from ACPI MCFG (checked against the q35 chipset's PCIEXBAR where that chipset is present), and
 * the 4 KiB page of every function that has a driver is trapped, so guest accesses there take
 * the same mediated path as port 0xCFC. The guest cannot move the window: writes to q35's
 * PCIEXBAR are dropped. See docs/io.md.
 */
#ifndef PARAPET_ECAM_H
#define PARAPET_ECAM_H

#include "core/types.h"

struct vcpu;

/* After pci_init(), before the guest runs. */
void ecam_init(void);

/* q35 (Intel 82G33/ICH9 "MCH"): the host bridge and its PCIEXBAR register. */
#define Q35_VENDOR 0x8086
#define Q35_DEVICE 0x29C0
#define Q35_PCIEXBAR 0x60 /* 64 bits: bit 0 enable, bits 2:1 length, address from bit 26 */

/* The trap handler of an ECAM page; ctx is the struct mcfg_window (io/acpi.h) of the window. */
bool ecam_access(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val);

/* Decode a q35 PCIEXBAR value into a window; false when disabled or reserved. */
bool q35_pciexbar_decode(u64 bar, u64 *base, u8 *bus_end);

#endif
