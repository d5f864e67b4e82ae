/*
 * The few ACPI tables Parapet reads at init (ACPI spec §5.2; PCI Firmware spec §4.1.2 for
 * MCFG; MADT for the processors): RSDP -> XSDT (or RSDT) -> MCFG, every length and checksum checked. Hardware-free:
 * memory is read through a map callback so host tests can supply fake tables.
 */
#ifndef PARAPET_ACPI_H
#define PARAPET_ACPI_H

#include "core/types.h"

/* A readable pointer to physical [pa, pa+len), or NULL. */
typedef const void *(*acpi_map_fn)(u64 pa, u64 len);

struct mcfg_window {
	u64 base; /* ECAM address of bus 0 of the segment */
	u16 segment;
	u8 bus_start, bus_end;
};

/* The RSDP: in the first KiB of the EBDA, else in 0xE0000-0xFFFFF. 0 when absent. */
u64 acpi_find_rsdp(acpi_map_fn map);

/* The physical address of the table with this signature (checksum verified), or 0. */
u64 acpi_find_table(acpi_map_fn map, u64 rsdp, const char sig[4]);

/* What firmware that trusts no checksum finds: the first entry of the RSDT (or of the XSDT)
 * whose table carries signature `sig`, or 0. *valid is false when the RSDP names that root table
 * but it is not a valid one (an absent XSDT is valid: 0 is returned). */
u64 acpi_first_entry(acpi_map_fn map, u64 rsdp, bool xsdt, const char sig[4], bool *valid);

/* A whole table at pa with a valid header, length and checksum (*len set), or NULL. */
const u8 *acpi_table(acpi_map_fn map, u64 pa, u32 *len);

/* Take every table with this signature out of the root table (XSDT or RSDT) the guest will
 * read, fixing its length and checksum; the tables themselves stay where they are. Writes
 * through the pointers `map` returns (firmware memory, before the guest runs). Returns how
 * many entries were removed. */
unsigned acpi_unlist(acpi_map_fn map, u64 rsdp, const char sig[4]);

/* The MCFG entry of PCI segment 0; false when there is none. */
bool acpi_mcfg_segment0(acpi_map_fn map, u64 mcfg, struct mcfg_window *out);

/* The APIC IDs of the present processors the MADT lists (ACPI §5.2.12: Processor Local APIC,
 * type 0, and Processor Local x2APIC, type 9, with the Enabled flag), each once, in table
 * order, at most `max`. Returns how many were stored. */
unsigned acpi_madt_cpus(acpi_map_fn map, u64 madt, u32 *ids, unsigned max);

/* The register bases of the I/O APICs the MADT lists (type 1, page-aligned), at most `max`. */
unsigned acpi_madt_ioapics(acpi_map_fn map, u64 madt, u64 *bases, unsigned max);

#endif
