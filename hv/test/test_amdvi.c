/* AMD-Vi: IVRS parsing (iommu/ivrs.c), the device table entry, command and event encodings
 * (iommu/amdvi.h), and the I/O page tables the generic builder writes, walked as an IOMMU does. */
#include "test.h"
#include "test/pagepool.h"
#include "iommu/ivrs.h"
#include "iommu/amdvi.h"
#include <stdlib.h>
#include <string.h>

/* ---- IVRS ---- */

static u8 tbl[2048];

static unsigned blk(unsigned off, u8 type, u16 len)
{
	tbl[off] = type;
	memcpy(tbl + off + 2, &len, 2);
	return off + len;
}

/* An IVHD of `type` for the IOMMU at device `devid`, with two 4-byte device entries (a range). */
static unsigned ivhd_at(unsigned off, u8 type, u16 devid, u16 seg, u64 base)
{
	unsigned hlen = type == IVHD_TYPE_10 ? IVHD_LEN_10 : 40, end = blk(off, type, (u16)(hlen + 8));
	memcpy(tbl + off + 4, &devid, 2);
	tbl[off + 6] = 0x40; /* capability offset */
	memcpy(tbl + off + 8, &base, 8);
	memcpy(tbl + off + 16, &seg, 2);
	tbl[off + hlen] = 3;     /* start of range: 00:00.0 */
	tbl[off + hlen + 4] = 4; /* end of range: ff:1f.7 */
	memset(tbl + off + hlen + 5, 0xFF, 2);
	return end;
}

static unsigned ivmd_at(unsigned off, u8 type, u8 flags, u64 start, u64 len)
{
	unsigned end = blk(off, type, 32);
	tbl[off + 1] = flags;
	memcpy(tbl + off + 16, &start, 8);
	memcpy(tbl + off + 24, &len, 8);
	return end;
}

static unsigned ivrs_header(void)
{
	memset(tbl, 0, sizeof(tbl));
	memcpy(tbl, "IVRS", 4);
	tbl[36] = 0x40; /* IVinfo: 48-bit virtual addresses */
	return IVRS_HEADER_LEN;
}

static void ivrs_well_formed(void)
{
	struct ivrs_info r;
	/* As QEMU builds it: the one IOMMU (00:01.0 here) described as type 10h and as type 11h. */
	unsigned off = ivrs_header();
	off = ivhd_at(off, IVHD_TYPE_10, 0x0008, 0, 0xFED80000);
	off = ivhd_at(off, IVHD_TYPE_11, 0x0008, 0, 0xFED80000);
	off = ivmd_at(off, IVMD_TYPE_ONE, IVMD_UNITY | 6, 0x7F000800, 0x1000); /* widened to pages */
	off = ivmd_at(off, IVMD_TYPE_ALL, 6, 0x1000, 0x1000);                  /* neither unity nor exclusion */
	off = ivmd_at(off, IVMD_TYPE_RANGE, IVMD_EXCLUSION, 0xC0000000, 0x100000);
	off = blk(off, 0x50, 12); /* unknown: skipped */
	CHECK(ivrs_parse(tbl, off, &r) == NULL);
	CHECK_EQ(r.ivinfo, 0x40);
	CHECK_EQ(r.nunits, 1);
	CHECK_EQ(r.units[0].type, IVHD_TYPE_11);
	CHECK_EQ(r.units[0].base, 0xFED80000);
	CHECK_EQ(r.units[0].devid, 0x0008);
	CHECK_EQ(r.units[0].segment, 0);
	CHECK_EQ(r.nfixed, 2);
	CHECK_EQ(r.fixed[0].base, 0x7F000000);
	CHECK_EQ(r.fixed[0].end, 0x7F002000);
	CHECK_EQ(r.fixed[1].base, 0xC0000000);
	CHECK_EQ(r.fixed[1].end, 0xC0100000);

	/* The best type wins whatever the order; a second IOMMU and another segment are kept. */
	off = ivrs_header();
	off = ivhd_at(off, IVHD_TYPE_40, 0x0002, 0, 0xFD200000);
	off = ivhd_at(off, IVHD_TYPE_10, 0x0002, 0, 0xFD200000);
	off = ivhd_at(off, IVHD_TYPE_11, 0x0002, 0, 0xFD200000);
	off = ivhd_at(off, IVHD_TYPE_10, 0x4002, 0, 0xFD300000);
	off = ivhd_at(off, IVHD_TYPE_11, 0x0002, 1, 0xFD400000);
	CHECK(ivrs_parse(tbl, off, &r) == NULL);
	CHECK_EQ(r.nunits, 3);
	CHECK_EQ(r.units[0].type, IVHD_TYPE_40);
	CHECK_EQ(r.units[1].base, 0xFD300000);
	CHECK_EQ(r.units[1].type, IVHD_TYPE_10);
	CHECK_EQ(r.units[2].segment, 1); /* parsed; amdvi's probe refuses it */
}

static void ivrs_malformed(void)
{
	struct ivrs_info r;
	unsigned off = ivrs_header();
	CHECK(ivrs_parse(tbl, IVRS_HEADER_LEN - 1, &r) != NULL); /* short header */
	CHECK(ivrs_parse(tbl, off, &r) != NULL);                 /* no IVHD */
	memcpy(tbl, "DMAR", 4);
	CHECK(ivrs_parse(tbl, off, &r) != NULL); /* signature */

	unsigned good = ivhd_at(ivrs_header(), IVHD_TYPE_11, 8, 0, 0xFED80000);
	CHECK(ivrs_parse(tbl, good, &r) == NULL);
	CHECK(ivrs_parse(tbl, good + 3, &r) != NULL); /* a 3-byte remainder */
	CHECK(ivrs_parse(tbl, good - 1, &r) != NULL); /* block past the end */
	blk(good, 0x50, 0);
	CHECK(ivrs_parse(tbl, good + 4, &r) != NULL); /* zero length: no progress */
	blk(good, 0x50, 3);
	CHECK(ivrs_parse(tbl, good + 4, &r) != NULL);
	blk(IVRS_HEADER_LEN, IVHD_TYPE_11, 24); /* 11h with a 10h header */
	CHECK(ivrs_parse(tbl, IVRS_HEADER_LEN + 24, &r) != NULL);
	blk(IVRS_HEADER_LEN, IVHD_TYPE_10, 20);
	CHECK(ivrs_parse(tbl, IVRS_HEADER_LEN + 20, &r) != NULL);

	static const u64 bad_bases[] = { 0, 0xFED81000, 0xFED80008 };
	for (unsigned i = 0; i < 3; i++) {
		off = ivhd_at(ivrs_header(), IVHD_TYPE_10, 8, 0, bad_bases[i]);
		CHECK(ivrs_parse(tbl, off, &r) != NULL);
	}
	off = ivhd_at(ivrs_header(), IVHD_TYPE_10, 8, 0, 0xFED80000);
	off = ivhd_at(off, IVHD_TYPE_10, 16, 0, 0xFED80000);
	CHECK(ivrs_parse(tbl, off, &r) != NULL); /* two IOMMUs, one base */

	off = ivrs_header();
	for (unsigned i = 0; i <= IOMMU_UNITS_MAX; i++)
		off = ivhd_at(off, IVHD_TYPE_10, (u16)i, 0, 0xFD000000 + 0x100000ull * i);
	CHECK(ivrs_parse(tbl, off, &r) != NULL); /* too many IOMMUs */

	static const u64 bad_ranges[][2] = { { 0x1000, 0 }, { ~0ull - 0xFFF, 0x1000 },
		{ 0xFFFFFFFFFFFFF800ull, 0x100 } };
	for (unsigned i = 0; i < 3; i++) {
		off = ivhd_at(ivrs_header(), IVHD_TYPE_10, 8, 0, 0xFED80000);
		off = ivmd_at(off, IVMD_TYPE_ALL, IVMD_UNITY, bad_ranges[i][0], bad_ranges[i][1]);
		CHECK(ivrs_parse(tbl, off, &r) != NULL);
	}
	off = ivhd_at(ivrs_header(), IVHD_TYPE_10, 8, 0, 0xFED80000);
	unsigned short_ivmd = blk(off, IVMD_TYPE_ONE, 24);
	CHECK(ivrs_parse(tbl, short_ivmd, &r) != NULL);
	for (unsigned i = 0; i <= IOMMU_FIXED_MAX; i++)
		off = ivmd_at(off, IVMD_TYPE_ALL, IVMD_UNITY, 0x100000ull * (i + 1), 0x1000);
	CHECK(ivrs_parse(tbl, off, &r) != NULL); /* too many ranges */
}

/* ---- Device table entries, commands, events ---- */

static void dte_encoding(void)
{
	u64 e[4];
	memset(e, 0xA5, sizeof(e));
	amdvi_dte(e, 0, 0);
	CHECK_EQ(e[0], DTE_V | DTE_TV); /* blocked: mode 0, IR = IW = 0 */
	CHECK_EQ(e[1] | e[2] | e[3], 0);
	amdvi_dte(e, 0x12345000, 7);
	CHECK_EQ(e[0], 0x12345000ull | (4ull << 9) | (1ull << 61) | (1ull << 62) | 3);
	CHECK_EQ(e[0] & ((0x1Full << 2) | (1ull << 63)), 0); /* reserved bits a walker checks */
	CHECK_EQ(e[1], 7);                                   /* domain ID 15:0 */
	CHECK_EQ(e[2] | e[3], 0);                            /* IV = 0: interrupts as before */

	struct amdvi_cmd c = amdvi_completion_wait(0x1F001008, 42);
	CHECK_EQ(c.q[0], 0x1000000000000000ull | 0x1F001008 | 1);
	CHECK_EQ(c.q[1], 42);
	c = amdvi_inv_dte(0x00F8);
	CHECK_EQ(c.q[0], 0x20000000000000F8ull);
	CHECK_EQ(c.q[1], 0);
	c = amdvi_inv_pages(3);
	CHECK_EQ(c.q[0], 0x3000000300000000ull);
	CHECK_EQ(c.q[1], 0x7FFFFFFFFFFFF003ull);

	struct amdvi_event ev = { { 0x2000000000000010ull | EVT_RW, 0x1EE00040 } };
	CHECK_EQ(amdvi_event_code(&ev), EVT_IO_PAGE_FAULT);
	CHECK_EQ(amdvi_event_devid(&ev), 0x10);
	CHECK(amdvi_event_write(&ev));
	ev.q[0] &= ~EVT_RW;
	CHECK(!amdvi_event_write(&ev));
}

/* ---- The page tables, as an IOMMU walks them (§2.2.3) ---- */

#define A pagepool


/* Translate `va` for a write through DTE `e`: the spec's walk, not the builder's lookup. Each
 * entry must be present with IR and IW; a table entry names the next lower level; a leaf
 * (next level 0) maps 4 KiB << 9 * (its level - 1). Returns the page size, 0 when blocked. */
static u64 walk(const u64 e[4], u64 va, u64 *pa, unsigned *bad)
{
	if (!(e[0] & DTE_V) || !(e[0] & DTE_TV) || !(e[0] & DTE_IW) || !(e[0] & DTE_IR))
		return 0;
	unsigned level = (e[0] >> 9) & 7;
	u64 table = e[0] & PTE_ADDR;
	for (; level; level--) {
		unsigned shift = 12 + 9 * (level - 1);
		u64 pte = ((u64 *)pagepool.ptr(NULL, table))[(va >> shift) & 511];
		if (!(pte & AMDVI_PR) || !(pte & AMDVI_IR) || !(pte & AMDVI_IW))
			return 0;
		unsigned next = (pte >> 9) & 7;
		u64 other = pte & ~(PTE_ADDR | AMDVI_PR | AMDVI_IR | AMDVI_IW | (7ull << 9));
		if (other)
			(*bad)++; /* no U, FC or reserved bit */
		if (next == 0) {
			*pa = (pte & PTE_ADDR & ~((1ull << shift) - 1)) | (va & ((1ull << shift) - 1));
			return 1ull << shift;
		}
		if (next != level - 1)
			(*bad)++;
		table = pte & PTE_ADDR;
	}
	(*bad)++; /* ran out of levels */
	return 0;
}

static void page_tables_walked(void)
{
	static const struct pt_format fmt = AMDVI_PT_FORMAT;
	u64 root = pagepool_reset(), pa, e[4];
	u64 rw = AMDVI_IR | AMDVI_IW;
	/* 1 GiB of RAM with a 16 MiB hole at 0x1EE00000, RAM above 4 GiB, one page at 0x9F000. */
	CHECK_EQ(pt_map_fmt(&fmt, &A, root, 0x100000, 0x100000, 0x1EE00000 - 0x100000, rw, PAGE_2M), 0);
	CHECK_EQ(pt_map_fmt(&fmt, &A, root, 0x1FE00000, 0x1FE00000, 0x20000000 - 0x1FE00000, rw, PAGE_2M), 0);
	CHECK_EQ(pt_map_fmt(&fmt, &A, root, 0x100000000ull, 0x100000000ull, 0x400000, rw, PAGE_2M), 0);
	CHECK_EQ(pt_map_fmt(&fmt, &A, root, 0x9F000, 0x9F000, 0x1000, rw, PAGE_2M), 0);
	amdvi_dte(e, root, 1);
	unsigned bad = 0;
	CHECK_EQ(walk(e, 0x00200000 + 0x1234, &pa, &bad), 1ull << 21); /* a 2 MiB leaf at level 2 */
	CHECK_EQ(pa, 0x00201234);
	CHECK_EQ(walk(e, 0x00100000, &pa, &bad), 4096); /* 1 MiB-2 MiB: 4 KiB pages */
	CHECK_EQ(walk(e, 0x1EDFF000, &pa, &bad), 1ull << 21);
	CHECK_EQ(walk(e, 0x1EE00000, &pa, &bad), 0); /* the hole */
	CHECK_EQ(walk(e, 0x1FDFF000, &pa, &bad), 0);
	CHECK_EQ(walk(e, 0x1FE00000, &pa, &bad), 1ull << 21);
	CHECK_EQ(walk(e, 0x9F800, &pa, &bad), 4096);
	CHECK_EQ(pa, 0x9F800);
	CHECK_EQ(walk(e, 0xA0000, &pa, &bad), 0);
	CHECK_EQ(walk(e, 0x100200000ull, &pa, &bad), 1ull << 21);
	CHECK_EQ(pa, 0x100200000ull);
	CHECK_EQ(walk(e, 0x20000000, &pa, &bad), 0);
	CHECK_EQ(bad, 0);
	/* The top-level entry names level 3, a level-3 entry level 2, a level-2 table entry level 1. */
	u64 *l4 = pagepool.ptr(NULL, root);
	CHECK_EQ((l4[0] >> 9) & 7, 3);
	u64 *l3 = pagepool.ptr(NULL, l4[0] & PTE_ADDR);
	CHECK_EQ((l3[0] >> 9) & 7, 2);
	u64 *l2 = pagepool.ptr(NULL, l3[0] & PTE_ADDR);
	CHECK_EQ((l2[0] >> 9) & 7, 1);             /* 0-2 MiB: a table of 4 KiB pages */
	CHECK_EQ(l2[1], 0x200000 | rw | AMDVI_PR); /* 2-4 MiB: a leaf, next level 0 */
	/* The builder's own lookup agrees. */
	u64 flags;
	unsigned shift;
	CHECK(pt_lookup_fmt(&fmt, &A, root, 0x00300000, &pa, &flags, &shift));
	CHECK_EQ(shift, PAGE_2M);
	CHECK_EQ(flags, rw | AMDVI_PR);
	/* A blocked entry translates nothing. */
	amdvi_dte(e, 0, 0);
	CHECK_EQ(walk(e, 0x00200000, &pa, &bad), 0);
}

TESTS(amdvi_tests) = {
	{ "amdvi: IVRS units (best IVHD type per IOMMU) and IVMD ranges parsed", ivrs_well_formed },
	{ "amdvi: malformed IVRS tables refused", ivrs_malformed },
	{ "amdvi: device table entries, commands and events encoded as the spec says", dte_encoding },
	{ "amdvi: I/O page tables walk as an IOMMU walks them, 2 MiB leaves at level 2", page_tables_walked },
	{ NULL, NULL },
};
