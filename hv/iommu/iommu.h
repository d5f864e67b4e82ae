/*
 * DMA isolation: no device can read or write Parapet's memory (DESIGN.md §4, invariant 1).
 *
 * Parapet takes the platform's IOMMUs (Intel VT-d from the ACPI DMAR table, AMD-Vi from IVRS)
 * before any guest code runs and turns DMA translation on for every requester:
 *   - the guest domain maps 1:1 the RAM, ACPI and NVS ranges of the guest's memory map, its
 *     reserved ranges below the lowest MMIO address (ECAM window, memory BARs, I/O APIC: the
 *     firmware's own DRAM, which the BIOS, running as the guest, still uses for DMA), and the
 *     ranges firmware says devices need (VT-d RMRR, AMD-Vi IVMD); never Parapet's region,
 *     never MMIO: no device reaches the IOMMU's registers, ECAM or the interrupt controllers;
 *   - every function present at start, and every requester ID on a bus behind a bridge (a
 *     conventional PCI device behind a PCIe-to-PCI bridge DMAs under an alias; hot-plugged
 *     devices appear there), translate through it; requester IDs no device can own (absent
 *     functions on a root bus, buses no bridge decodes) have no entry: their DMA is blocked;
 *   - a device Parapet mediates gets a domain of its own: the guest's plus the private buffers
 *     its driver asked for (iommu_dma_allow), e.g. the ATA driver's shadow buffers;
 *   - the IOMMU's register pages are trap pages the guest cannot use, and the DMAR/IVRS table
 *     is taken out of the guest's ACPI root table: the guest is offered no IOMMU.
 * Faults are recorded by the hardware, collected between exits (iommu_poll), counted and
 * logged rate-limited. The IOMMU adds no exit of its own.
 */
#ifndef PARAPET_IOMMU_H
#define PARAPET_IOMMU_H

#include "core/types.h"
#include "io/acpi.h"
#include "mm/memmap.h"
#include "mm/pagetable.h"

#define IOMMU_UNITS_MAX 8
#define IOMMU_FIXED_MAX 16

/* A translation domain: one table, one hardware domain ID. */
struct dma_domain {
	u16 id;   /* >= 1 */
	u64 root; /* physical address of the top-level table */
};

/* What a vendor driver found in its ACPI table (filled by probe). */
struct iommu_hw {
	const struct pt_format *fmt; /* the table format every unit accepts (leaves: fmt->rw) */
	unsigned max_shift;          /* largest page every unit accepts: PAGE_4K/2M/1G */
	unsigned nregs;
	struct {
		u64 base, len;
	} regs[IOMMU_UNITS_MAX]; /* register windows, hidden from the guest */
	unsigned nfixed;
	struct {
		u64 base, end;
	} fixed[IOMMU_FIXED_MAX]; /* [base, end) firmware requires mapped 1:1 */
};

/* A vendor's driver. Every function runs on the boot CPU before the guest, except poll (any
 * CPU, serialised by iommu.c) and attach/flush after start (serialised by iommu.c). */
struct iommu_ops {
	const char *name;
	const char sig[4]; /* its ACPI table: "DMAR", "IVRS" */
	/* Parse the table, check every unit is usable, fill *hw. False (and a log line saying
	 * why) when a unit cannot be used: DMA isolation is then off. */
	bool (*probe)(acpi_map_fn map, u64 table, struct iommu_hw *hw);
	/* DMA from requester ID rid (bus << 8 | devfn, PCI segment 0) translates through d. */
	bool (*attach)(u16 rid, const struct dma_domain *d);
	bool (*enable)(void); /* translation on in every unit; false on a timeout */
	void (*flush)(void);  /* after attach or a table change while enabled */
	void (*poll)(void);   /* report recorded faults through iommu_fault() */
};

extern const struct iommu_ops vtd_ops, amdvi_ops;

/* Find and take the IOMMUs (after hvmem_setup, before any guest code). */
void iommu_init(void);
/* Hide the register pages and the ACPI table from the guest (after the nested page tables). */
void iommu_hide(void);
/* After S3 (the units were reset): the same tables, translation on again. False on a timeout. */
bool iommu_resume(void);
/* Is DMA translation on in every IOMMU the platform has? */
bool iommu_active(void);
/* The device at bus:devfn may also reach [pa, pa+len) of Parapet's memory (its mediating
 * driver's own buffers, 4 KiB aligned). No-op when DMA isolation is off. */
void iommu_dma_allow(u8 bus, u8 devfn, u64 pa, u64 len);
/* Back to the guest's domain: what iommu_dma_allow gave the device is out of its reach again (a
 * driver that probed with its buffers and then declined the device). */
void iommu_dma_revoke(u8 bus, u8 devfn);
/* Collect recorded faults; at most once per ~10 ms unless `now`. */
void iommu_poll(bool now);
/* Called by a vendor driver for each fault it collects. */
void iommu_fault(u16 rid, u64 addr, bool write, unsigned reason);

struct iommu_stats {
	u64 faults; /* DMA requests blocked */
	unsigned units;
};
extern struct iommu_stats iommu_stats;

/* Map the guest domain: the RAM, ACPI and NVS ranges of `m`, and its reserved ranges below
 * mmio_floor (firmware's own DRAM, e.g. the BIOS's disk structures: the BIOS runs as the guest),
 * widened to pages, plus the fixed ranges of hw; never [hole_base, hole_end) (Parapet) nor
 * anything from mmio_floor up that the map does not call RAM. Hardware-free (host-tested). */
int iommu_map_guest(const struct pt_alloc *a, const struct iommu_hw *hw, u64 root, const struct memmap *m,
    u64 hole_base, u64 hole_end, u64 mmio_floor);

#endif
