/* DMA isolation: DMAR parsing and the guest's DMA domain (iommu/dmar.c, iommu/iommu.c). */
#include "test.h"
#include "iommu/dmar.h"
#include "mm/memmap.h"
#include "test/pagepool.h"
#include <stdlib.h>
#include <string.h>

/* ---- DMAR ---- */

static u8 tbl[1024];

static unsigned put(unsigned off, u16 type, u16 len)
{
	memcpy(tbl + off, &type, 2);
	memcpy(tbl + off + 2, &len, 2);
	return off + len;
}

static unsigned drhd(unsigned off, u8 flags, u8 size, u16 seg, u64 base)
{
	unsigned end = put(off, DMAR_TYPE_DRHD, 16 + 8); /* with one device scope */
	tbl[off + 4] = flags;
	tbl[off + 5] = size;
	memcpy(tbl + off + 6, &seg, 2);
	memcpy(tbl + off + 8, &base, 8);
	tbl[off + 16] = 1; /* scope: PCI endpoint */
	tbl[off + 17] = 8;
	return end;
}

static unsigned rmrr(unsigned off, u64 base, u64 limit)
{
	unsigned end = put(off, DMAR_TYPE_RMRR, 24);
	memcpy(tbl + off + 8, &base, 8);
	memcpy(tbl + off + 16, &limit, 8);
	return end;
}

static unsigned dmar_header(void)
{
	memset(tbl, 0, sizeof(tbl));
	memcpy(tbl, "DMAR", 4);
	tbl[36] = 38; /* 39-bit host address width */
	return DMAR_HEADER_LEN;
}

static void dmar_well_formed(void)
{
	struct dmar_info d;
	unsigned off = dmar_header();
	off = drhd(off, 0, 0, 0, 0xFED91000);
	off = put(off, 2, 8); /* an ATSR: skipped */
	off = rmrr(off, 0x7F000000, 0x7F0FFFFF);
	off = drhd(off, DRHD_INCLUDE_PCI_ALL, 1, 0, 0xFED90000);
	CHECK(dmar_parse(tbl, off, &d) == NULL);
	CHECK_EQ(d.haw, 38);
	CHECK_EQ(d.nunits, 2);
	CHECK_EQ(d.units[0].base, 0xFED91000);
	CHECK_EQ(d.units[0].len, 4096);
	CHECK_EQ(d.units[1].flags, DRHD_INCLUDE_PCI_ALL);
	CHECK_EQ(d.units[1].len, 8192);
	CHECK_EQ(d.nrmrr, 1);
	CHECK_EQ(d.rmrr[0].base, 0x7F000000);
	CHECK_EQ(d.rmrr[0].end, 0x7F100000);
}

static void dmar_malformed(void)
{
	struct dmar_info d;
	unsigned off = dmar_header();
	CHECK(dmar_parse(tbl, 40, &d) != NULL);  /* shorter than the header */
	CHECK(dmar_parse(tbl, off, &d) != NULL); /* no unit */
	unsigned end = drhd(off, 0, 0, 0, 0xFED90000);
	CHECK(dmar_parse(tbl, end - 1, &d) != NULL); /* structure past the end */
	CHECK(dmar_parse(tbl, end + 2, &d) != NULL); /* trailing partial header */
	memcpy(tbl, "APIC", 4);
	CHECK(dmar_parse(tbl, end, &d) != NULL);
	memcpy(tbl, "DMAR", 4);
	put(off, DMAR_TYPE_DRHD, 0); /* zero length: would loop */
	CHECK(dmar_parse(tbl, end, &d) != NULL);
	drhd(off, 0, 0, 0, 0xFED90800); /* unaligned base */
	CHECK(dmar_parse(tbl, end, &d) != NULL);
	drhd(off, 0, 0, 0, 0);
	CHECK(dmar_parse(tbl, end, &d) != NULL);
	drhd(off, 0, 0, 0, 0xFED90000);
	CHECK(dmar_parse(tbl, rmrr(end, 0x1000, 0x0FFF), &d) != NULL); /* limit below base */
	CHECK(dmar_parse(tbl, rmrr(end, 0x1000, 0x1FFE), &d) != NULL); /* limit not page end */
	CHECK(dmar_parse(tbl, rmrr(end, 0x1000, ~0ull), &d) != NULL);  /* would wrap */
	off = dmar_header();
	for (unsigned i = 0; i <= IOMMU_UNITS_MAX; i++)
		off = drhd(off, 0, 0, 0, 0xFED00000 + 0x1000 * i);
	CHECK(dmar_parse(tbl, off, &d) != NULL); /* more units than handled */
	CHECK_EQ(d.nunits, 0);                   /* nothing half-filled is used */
}

/* ---- The guest domain ---- */

#define A pagepool


/* VT-d's second-level format: R bit 0, W bit 1, bit 7 a large page. */
static const struct pt_format sl4 = { .top_shift = 39, .table = 3, .large = 1ull << 7, .rw = 3 };
static const struct pt_format sl3 = { .top_shift = 30, .table = 3, .large = 1ull << 7, .rw = 3 };

#define HOLE_BASE 0x1E000000ull
#define HOLE_END 0x1F000000ull
#define FLOOR 0xB0000000ull /* the lowest MMIO: ECAM here */

static void firmware_map(struct memmap *m)
{
	m->n = 0;
	memmap_add(m, 0, 0x9FC00, E820_RAM);
	memmap_add(m, 0x9FC00, 0x400, E820_RESERVED);
	memmap_add(m, 0xF0000, 0x10000, E820_RESERVED);
	memmap_add(m, 0x100000, 0x20000000 - 0x100000 - 0x20000, E820_RAM);
	memmap_add(m, 0x20000000 - 0x20000, 0x10000, E820_ACPI);
	memmap_add(m, 0x20000000 - 0x10000, 0x10000, E820_RESERVED); /* the BIOS's high zone */
	memmap_add(m, 0xAFFFF000, 0x2000, E820_RESERVED);            /* across the MMIO floor */
	memmap_add(m, 0xB0000000, 0x10000000, E820_RESERVED);        /* ECAM */
	memmap_add(m, 0xFED90000, 0x1000, E820_RESERVED);
	memmap_carve(m, HOLE_BASE, HOLE_END - HOLE_BASE, E820_RESERVED); /* Parapet */
}

static bool mapped(const struct pt_format *f, u64 root, u64 addr)
{
	u64 pa, flags;
	unsigned shift;
	if (!pt_lookup_fmt(f, &A, root, addr, &pa, &flags, &shift))
		return false;
	CHECK_EQ(pa, addr);     /* 1:1 */
	CHECK_EQ(flags & 3, 3); /* read and write */
	return true;
}

static void guest_domain_excludes_parapet(void)
{
	struct memmap m;
	firmware_map(&m);
	struct iommu_hw hw = { .fmt = &sl4, .max_shift = PAGE_2M, .nfixed = 2 };
	hw.fixed[0].base = 0xD0000000, hw.fixed[0].end = 0xD0001000;                 /* an RMRR above the floor */
	hw.fixed[1].base = HOLE_BASE - 0x1000, hw.fixed[1].end = HOLE_BASE + 0x1000; /* one over Parapet */
	u64 root = pagepool_reset();
	CHECK_EQ(iommu_map_guest(&A, &hw, root, &m, HOLE_BASE, HOLE_END, FLOOR), 0);
	CHECK(mapped(&sl4, root, 0));
	CHECK(mapped(&sl4, root, 0x9F000));             /* RAM's last partial page */
	CHECK(!mapped(&sl4, root, 0xA0000));            /* legacy video: MMIO */
	CHECK(mapped(&sl4, root, 0x9FC00));             /* EBDA: reserved DRAM */
	CHECK(mapped(&sl4, root, 0xF0000));             /* BIOS area: reserved DRAM */
	CHECK(!mapped(&sl4, root, 0x100000 - 0x20000)); /* not in the map */
	CHECK(mapped(&sl4, root, 0x100000));
	CHECK(mapped(&sl4, root, HOLE_BASE - 0x1000));
	unsigned hits = 0;
	for (u64 a = HOLE_BASE; a < HOLE_END; a += 0x1000)
		hits += mapped(&sl4, root, a);
	CHECK_EQ(hits, 0); /* no page of Parapet's region */
	CHECK(mapped(&sl4, root, HOLE_END));
	CHECK(mapped(&sl4, root, 0x1FFE0000)); /* ACPI tables */
	CHECK(mapped(&sl4, root, 0x1FFFF000)); /* the BIOS's reserved DRAM */
	CHECK(!mapped(&sl4, root, 0x20000000));
	CHECK(mapped(&sl4, root, 0xAFFFF000));          /* reserved, below the floor */
	CHECK(mapped(&sl4, root, 0x7F000000) == false); /* a hole in the map */
	CHECK(!mapped(&sl4, root, 0xB0000000));         /* ECAM */
	CHECK(mapped(&sl4, root, 0xD0000000));          /* the RMRR */
	CHECK(!mapped(&sl4, root, 0xD0001000));
	CHECK(!mapped(&sl4, root, 0xFED90000)); /* IOMMU registers */
	CHECK(!mapped(&sl4, root, 0xFEE00000)); /* interrupt range */
	u64 pa, flags;
	unsigned shift;
	CHECK(pt_lookup_fmt(&sl4, &A, root, 0x400000, &pa, &flags, &shift));
	CHECK_EQ(shift, PAGE_2M);
	CHECK(flags & (1ull << 7));

	/* Three levels: the same map, and nothing beyond 512 GiB can be mapped. */
	root = pagepool_reset();
	hw.fmt = &sl3;
	CHECK_EQ(iommu_map_guest(&A, &hw, root, &m, HOLE_BASE, HOLE_END, FLOOR), 0);
	CHECK(mapped(&sl3, root, 0x1FFFF000));
	CHECK(!mapped(&sl3, root, HOLE_BASE));
	memmap_add(&m, 1ull << 39, 0x1000, E820_RAM);
	CHECK_EQ(iommu_map_guest(&A, &hw, root, &m, HOLE_BASE, HOLE_END, FLOOR), -1);
}

TESTS(iommu_tests) = {
	{ "iommu: DMAR units and reserved regions parsed", dmar_well_formed },
	{ "iommu: malformed DMAR tables refused", dmar_malformed },
	{ "iommu: the guest domain maps RAM 1:1 and never Parapet, MMIO or ECAM", guest_domain_excludes_parapet },
	{ NULL, NULL },
};
