/*
 * The ACPI I/O Virtualization Reporting Structure (AMD I/O Virtualization Technology (IOMMU)
 * Specification #48882, rev. 3, §5.2): the IOMMU definition blocks (IVHD, §5.2.2) and the
 * memory definition blocks (IVMD, §5.2.3). A pure parser (host-tested, fuzzed): every block is
 * checked to lie inside the table; device entries are not read (Parapet covers every device ID).
 */
#ifndef PARAPET_IVRS_H
#define PARAPET_IVRS_H

#include "iommu/iommu.h"

#define IVRS_HEADER_LEN 48 /* ACPI header (36), IVinfo (4), reserved (8) */

/* IVHD types (§5.2.2): one IOMMU may be described once per type; 11h and 40h carry the
 * extended feature register's image and supersede 10h. */
#define IVHD_TYPE_10 0x10
#define IVHD_TYPE_11 0x11
#define IVHD_TYPE_40 0x40

/* The fixed part of an IVHD block (§5.2.2); device entries follow it. */
struct ivhd_header {
	u8 type, flags;
	u16 length;     /* of the whole block, device entries included */
	u16 devid;      /* the IOMMU's own PCI function */
	u16 cap_offset; /* its IOMMU capability block in configuration space */
	u64 base;       /* register base */
	u16 segment;    /* PCI segment group */
	u16 info;
	u32 attr; /* 10h: IOMMU feature reporting; 11h/40h: IOMMU attributes */
	u64 efr;  /* 11h/40h only: image of the extended feature register */
	u64 efr2;
} __packed;
_Static_assert(sizeof(struct ivhd_header) == 40, "IVHD 11h/40h header is 40 bytes");
#define IVHD_LEN_10 24 /* type 10h stops after `attr` */

/* IVMD types (§5.2.3): memory for all devices, one device, a range of devices. */
#define IVMD_TYPE_ALL 0x20
#define IVMD_TYPE_ONE 0x21
#define IVMD_TYPE_RANGE 0x22
#define IVMD_UNITY (1u << 0)     /* devices need [start, start+len) mapped 1:1 */
#define IVMD_EXCLUSION (1u << 3) /* an exclusion range: never translated */

struct ivmd {
	u8 type, flags;
	u16 length;
	u16 devid;
	u16 aux; /* 22h: the last device ID of the range */
	u64 reserved;
	u64 start;
	u64 len;
} __packed;
_Static_assert(sizeof(struct ivmd) == 32, "IVMD block is 32 bytes");

struct ivrs_info {
	u32 ivinfo;
	unsigned nunits;
	struct {
		u64 base;
		u16 devid, segment;
		u8 type; /* the IVHD type this unit was taken from */
	} units[IOMMU_UNITS_MAX];
	unsigned nfixed;
	struct {
		u64 base, end;
	} fixed[IOMMU_FIXED_MAX]; /* [base, end), 4 KiB aligned */
};

/* Parse the table [t, t+len) (header checksum already checked). NULL, or the problem. */
const char *ivrs_parse(const u8 *t, u32 len, struct ivrs_info *out);

#endif
