/* Guest page walks over synthetic page tables in fake guest memory: every paging mode, the #PF
 * error codes, large pages, A/D bits, and tables that are not RAM. */
#include "test.h"
#include "fakeguest.h"
#include "vmm/gwalk.h"
#include "core/x86.h"

#define P 1ull
#define W 2ull
#define U 4ull
#define A 0x20ull
#define D 0x40ull
#define PS 0x80ull
#define NX (1ull << 63)

#define CR0_WP (1ull << 16)
#define CR4_PSE (1ull << 4)
#define CR4_LA57 (1ull << 12)
#define CR4_SMEP (1ull << 20)
#define CR4_SMAP (1ull << 21)

static struct gw_regs regs(u64 cr0, u64 cr3, u64 cr4, u64 efer, u8 cpl)
{
	return (struct gw_regs){ cr0, cr3, cr4, efer, 2, cpl, 40 };
}

static enum gw_result walk(const struct gw_regs *r, u64 la, unsigned acc, u64 *gpa, u32 *err)
{
	struct gw_fault f = { 0xDEAD, 0 };
	enum gw_result res = gwalk(r, la, acc, gpa, &f);
	*err = f.error;
	if (res == GW_PAGE_FAULT)
		CHECK_EQ(f.addr, la);
	return res;
}

static void no_paging(void)
{
	fg_begin();
	u64 gpa;
	u32 err;
	struct gw_regs r = regs(0, 0, 0, 0, 0); /* real mode */
	CHECK_EQ(walk(&r, 0xFFFF0 + 0xFFFF, GW_WRITE, &gpa, &err), GW_OK);
	CHECK_EQ(gpa, 0x10FFEF);
	r = regs(CR0_PE, 0x1234000, 0, 0, 3); /* protected, no paging */
	CHECK_EQ(walk(&r, 0x1FFFFFFFFull, GW_READ, &gpa, &err), GW_OK);
	CHECK_EQ(gpa, 0xFFFFFFFF);
	fg_end();
}

static void paging32(void)
{
	fg_begin();
	u64 gpa;
	u32 err;
	/* PD at 0x1000: PDE 1 -> PT at 0x2000 (user, rw); PDE 2 = 4 MiB page at 0xC00000 (rw,
	 * supervisor); PDE 3 -> PT 0x3000 read-only user. PSE-36: PDE 4 maps 4 MiB at 0x1_0040_0000. */
	fg_w32(0x1000 + 1 * 4, 0x2000 | P | W | U);
	fg_w32(0x2000 + 5 * 4, 0x5000 | P | W | U);
	fg_w32(0x1000 + 2 * 4, 0xC00000 | P | W | PS);
	fg_w32(0x1000 + 3 * 4, 0x3000 | P | W | U);
	fg_w32(0x3000 + 0 * 4, 0x6000 | P | U);
	fg_w32(0x1000 + 4 * 4, 0x400000 | (1u << 13) | P | PS);
	struct gw_regs r = regs(CR0_PE | CR0_PG, 0x1000, CR4_PSE, 0, 0);
	CHECK_EQ(walk(&r, 0x405123, GW_READ, &gpa, &err), GW_OK);
	CHECK_EQ(gpa, 0x5123);
	CHECK(fg_r32(0x1000 + 4) & A);
	CHECK(!(fg_r32(0x2000 + 20) & D));
	CHECK_EQ(walk(&r, 0x405123, GW_WRITE, &gpa, &err), GW_OK);
	CHECK(fg_r32(0x2000 + 20) & D);
	CHECK(!(fg_r32(0x1000 + 4) & D));                         /* D only on the leaf */
	CHECK_EQ(walk(&r, 0x9ABCDE, GW_READ, &gpa, &err), GW_OK); /* 4 MiB page */
	CHECK_EQ(gpa, 0xC00000 + 0x1ABCDE);
	CHECK_EQ(walk(&r, 0x1000123, GW_READ, &gpa, &err), GW_OK); /* PSE-36 */
	CHECK_EQ(gpa, 0x100400123ull);
	/* Not present: error code says read/write and user/supervisor, P clear. */
	CHECK_EQ(walk(&r, 0x406000, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, 0);
	r.cpl = 3;
	CHECK_EQ(walk(&r, 0x2000000, GW_WRITE, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_W | PF_U);
	/* User access to a supervisor page; write to a read-only page. */
	CHECK_EQ(walk(&r, 0x800000, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_U);
	CHECK_EQ(walk(&r, 0xC00000, GW_WRITE, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_W | PF_U);
	CHECK_EQ(walk(&r, 0xC00000, GW_READ, &gpa, &err), GW_OK);
	/* The supervisor may write a read-only page unless CR0.WP. */
	r.cpl = 0;
	CHECK_EQ(walk(&r, 0xC00010, GW_WRITE, &gpa, &err), GW_OK);
	r.cr0 |= CR0_WP;
	CHECK_EQ(walk(&r, 0xC00010, GW_WRITE, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_W);
	/* Without CR4.PSE the PS bit is ignored: the PDE points to a page table. */
	r = regs(CR0_PE | CR0_PG, 0x1000, 0, 0, 0);
	fg_w32(0xC00000, 0x7000 | P);
	CHECK_EQ(walk(&r, 0x800000, GW_READ, &gpa, &err), GW_OK);
	CHECK_EQ(gpa, 0x7000);
	/* PSE-36 bits beyond the physical width are reserved. */
	r = regs(CR0_PE | CR0_PG, 0x1000, CR4_PSE, 0, 0);
	r.maxphyaddr = 32;
	CHECK_EQ(walk(&r, 0x1000123, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_RSVD);
	fg_end();
}

static void pae(void)
{
	fg_begin();
	u64 gpa;
	u32 err;
	/* CR3 -> PDPT at 0x1020 (32-byte aligned), PDPTE 1 -> PD 0x2000; PDE 0 = 2 MiB page NX,
	 * PDE 1 -> PT 0x3000. */
	fg_w64(0x1020 + 8, 0x2000 | P);
	fg_w64(0x2000 + 0, 0x600000 | P | W | PS | NX);
	fg_w64(0x2000 + 8, 0x3000 | P | W);
	fg_w64(0x3000 + 3 * 8, 0x7000 | P | W);
	struct gw_regs r = regs(CR0_PE | CR0_PG, 0x1020, CR4_PAE, EFER_NXE, 0);
	CHECK_EQ(walk(&r, 0x40123456, GW_READ, &gpa, &err), GW_OK);
	CHECK_EQ(gpa, 0x723456);
	CHECK_EQ(walk(&r, 0x40203456, GW_READ, &gpa, &err), GW_OK);
	CHECK_EQ(gpa, 0x7456);
	CHECK_EQ(walk(&r, 0x40123456, GW_FETCH, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_I);
	CHECK_EQ(walk(&r, 0x80000000, GW_READ, &gpa, &err), GW_PAGE_FAULT); /* PDPTE 2 absent */
	CHECK_EQ(err, 0);
	/* NX without EFER.NXE is a reserved bit. */
	r.efer = 0;
	CHECK_EQ(walk(&r, 0x40123456, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_RSVD);
	/* A 2 MiB page with address bits 20:13 set is reserved. */
	r.efer = EFER_NXE;
	fg_w64(0x2000 + 16, 0x602000 | P | PS);
	CHECK_EQ(walk(&r, 0x40400000, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_RSVD);
	/* Reserved bits in the PDPTE (R/W is reserved there). */
	fg_w64(0x1020 + 24, 0x2000 | P | W);
	CHECK_EQ(walk(&r, 0xC0000000, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_RSVD);
	fg_end();
}

static u64 lm_tables(void)
{
	/* PML4 0x1000: [0] -> PDPT 0x2000; PDPT[0] -> PD 0x3000, PDPT[1] = 1 GiB page at 0x40000000?
	 * (outside fake RAM: only translated), PD[0] -> PT 0x4000, PD[1] = 2 MiB page at 0x200000. */
	fg_w64(0x1000, 0x2000 | P | W | U);
	fg_w64(0x2000, 0x3000 | P | W | U);
	fg_w64(0x2000 + 8, 0x40000000 | P | W | PS);
	fg_w64(0x3000, 0x4000 | P | W | U);
	fg_w64(0x3000 + 8, 0x200000 | P | W | U | PS);
	fg_w64(0x4000 + 8 * 8, 0x9000 | P | W | U);
	fg_w64(0x4000 + 9 * 8, 0xA000 | P | U);
	return 0x1000;
}

static void long_mode(void)
{
	fg_begin();
	u64 gpa;
	u32 err;
	struct gw_regs r = regs(CR0_PE | CR0_PG, lm_tables(), CR4_PAE, EFER_LME | EFER_LMA | EFER_NXE, 0);
	CHECK_EQ(walk(&r, 0x8123, GW_WRITE, &gpa, &err), GW_OK);
	CHECK_EQ(gpa, 0x9123);
	CHECK(fg_r64(0x1000) & A);
	CHECK(fg_r64(0x4000 + 64) & D);
	CHECK_EQ(walk(&r, 0x2FFFFF, GW_READ, &gpa, &err), GW_OK); /* 2 MiB */
	CHECK_EQ(gpa, 0x2FFFFF);
	CHECK_EQ(walk(&r, 0x7654321F, GW_READ, &gpa, &err), GW_OK); /* 1 GiB */
	CHECK_EQ(gpa, 0x7654321F);
	/* Non-present at each level. */
	CHECK_EQ(walk(&r, 1ull << 39, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, 0);
	CHECK_EQ(walk(&r, 0xB000, GW_FETCH, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_I);
	/* Reserved: an address bit beyond MAXPHYADDR; PS in a PML4E. */
	fg_w64(0x4000 + 10 * 8, (1ull << 45) | 0xB000 | P | W);
	CHECK_EQ(walk(&r, 0xA000, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_RSVD);
	fg_w64(0x1000 + 8, 0x2000 | P | PS);
	CHECK_EQ(walk(&r, 1ull << 39, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_RSVD);
	/* User accesses: the 1 GiB page is supervisor-only; user write to a read-only user page. */
	r.cpl = 3;
	CHECK_EQ(walk(&r, 0x40000000, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_U);
	CHECK_EQ(walk(&r, 0x9000, GW_WRITE, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_W | PF_U);
	CHECK_EQ(walk(&r, 0x9000, GW_READ, &gpa, &err), GW_OK);
	/* SMEP: supervisor fetch from a user page; SMAP: supervisor data access unless RFLAGS.AC. */
	r.cpl = 0;
	r.cr4 |= CR4_SMEP | CR4_SMAP;
	CHECK_EQ(walk(&r, 0x8000, GW_FETCH, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P | PF_I);
	CHECK_EQ(walk(&r, 0x8000, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	CHECK_EQ(err, PF_P);
	r.rflags |= 1ull << 18;
	CHECK_EQ(walk(&r, 0x8000, GW_READ, &gpa, &err), GW_OK);
	CHECK_EQ(walk(&r, 0x40000000, GW_FETCH, &gpa, &err), GW_OK); /* supervisor page */
	fg_end();
}

static void five_level(void)
{
	fg_begin();
	u64 gpa;
	u32 err;
	/* PML5 0x5000 [1] -> PML4 0x1000 ... */
	lm_tables();
	fg_w64(0x5000 + 8, 0x1000 | P | W);
	struct gw_regs r = regs(CR0_PE | CR0_PG, 0x5000, CR4_PAE | CR4_LA57, EFER_LME | EFER_LMA, 0);
	CHECK_EQ(walk(&r, (1ull << 48) | 0x8123, GW_READ, &gpa, &err), GW_OK);
	CHECK_EQ(gpa, 0x9123);
	CHECK_EQ(walk(&r, 0x8123, GW_READ, &gpa, &err), GW_PAGE_FAULT);
	fg_end();
}

static void tables_not_ram(void)
{
	fg_begin();
	u64 gpa;
	u32 err;
	fg_w64(0x1000, FG_HOLE | P | W); /* the PDPT is in MMIO */
	struct gw_regs r = regs(CR0_PE | CR0_PG, 0x1000, CR4_PAE, EFER_LMA, 0);
	CHECK_EQ(walk(&r, 0x1000, GW_READ, &gpa, &err), GW_NOT_RAM);
	r.cr3 = FG_SIZE + 0x1000; /* CR3 beyond RAM */
	CHECK_EQ(walk(&r, 0x1000, GW_READ, &gpa, &err), GW_NOT_RAM);
	fg_end();
}

static void copy_across_pages(void)
{
	fg_begin();
	struct gw_regs r = regs(CR0_PE | CR0_PG, lm_tables(), CR4_PAE, EFER_LMA, 0);
	for (int i = 0; i < 16; i++)
		((u8 *)fg(0x9FF8))[i] = (u8)i;
	u8 buf[16] = { 0 };
	struct gw_fault f;
	CHECK_EQ(gw_copy(&r, 0x8FF8, buf, 16, GW_READ, false, &f), GW_OK); /* 0x8000 -> 0x9000, 0x9000 -> 0xA000 */
	for (int i = 0; i < 16; i++)
		CHECK_EQ(buf[i], i);
	/* Writing into the read-only second page with WP: a fault on it and nothing written. */
	r.cr0 |= CR0_WP;
	u8 src[16];
	for (int i = 0; i < 16; i++)
		src[i] = 0xA0;
	CHECK_EQ(gw_copy(&r, 0x8FF8, src, 16, GW_WRITE, true, &f), GW_PAGE_FAULT);
	CHECK_EQ(f.addr, 0x9000);
	CHECK_EQ(f.error, PF_P | PF_W);
	CHECK_EQ(((u8 *)fg(0x9FF8))[0], 0);
	fg_end();
}

TESTS(gwalk_tests) = {
	{ "gwalk: real mode and protected mode without paging", no_paging },
	{ "gwalk: 32-bit paging, 4 MiB and PSE-36 pages, WP, error codes", paging32 },
	{ "gwalk: PAE, NX and reserved bits", pae },
	{ "gwalk: long mode 4-level, 1 GiB/2 MiB pages, SMEP/SMAP, A/D", long_mode },
	{ "gwalk: 5-level paging", five_level },
	{ "gwalk: page tables that are not RAM", tables_not_ram },
	{ "gwalk: copies across pages are all or nothing", copy_across_pages },
	{ NULL, NULL },
};
