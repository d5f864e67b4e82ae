/*
 * The ACPI DMA Remapping Reporting table (Intel VT-d specification §8): the remapping hardware
 * units (DRHD, §8.3) and the memory firmware keeps using by DMA after boot (RMRR, §8.4).
 * A pure parser (host-tested, fuzzed): every structure is checked to lie inside the table.
 */
#ifndef PARAPET_DMAR_H
#define PARAPET_DMAR_H

#include "iommu/iommu.h"

#define DMAR_HEADER_LEN 48 /* ACPI header (36), host address width, flags, reserved */
#define DMAR_TYPE_DRHD 0
#define DMAR_TYPE_RMRR 1
#define DRHD_INCLUDE_PCI_ALL (1u << 0)

struct dmar_info {
	u8 haw;   /* host address width: bits = haw + 1 */
	u8 flags; /* bit 0 INTR_REMAP, 1 X2APIC_OPT_OUT, 2 DMA_CTRL_PLATFORM_OPT_IN */
	unsigned nunits;
	struct {
		u64 base; /* register base, 4 KiB aligned */
		u64 len;  /* register set: 4 KiB << size field */
		u16 segment;
		u8 flags; /* DRHD_INCLUDE_PCI_ALL */
	} units[IOMMU_UNITS_MAX];
	unsigned nrmrr;
	struct {
		u64 base, end;
	} rmrr[IOMMU_FIXED_MAX]; /* [base, end) */
};

/* Parse the table [t, t+len) (header checksum already checked). NULL, or the problem. */
const char *dmar_parse(const u8 *t, u32 len, struct dmar_info *out);

#endif
