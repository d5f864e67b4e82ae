#include "test.h"
#include "mm/pagetable.h"
#include <stdlib.h>
#include <string.h>

/* Fake physical memory: page n lives at pool + n*4096; physical address = n*4096 + BASE. */
#define POOL_PAGES 512
#define BASE 0x40000000ull
static unsigned char *pool;
static unsigned used, limit;

static uint64_t fake_alloc(void *ctx)
{
	(void)ctx;
	if (used >= limit)
		return 0;
	memset(pool + used * 4096ull, 0, 4096);
	return BASE + 4096ull * used++;
}

static void *fake_ptr(void *ctx, uint64_t pa)
{
	(void)ctx;
	if (pa < BASE || pa >= BASE + 4096ull * POOL_PAGES)
		abort();
	return pool + (pa - BASE);
}

static const struct pt_alloc A = { fake_alloc, fake_ptr, NULL };

static uint64_t fresh(unsigned lim)
{
	if (!pool)
		pool = aligned_alloc(4096, 4096ull * POOL_PAGES);
	used = 0;
	limit = lim;
	return fake_alloc(NULL);
}

static void identity_uses_large_pages(void)
{
	uint64_t root = fresh(POOL_PAGES);
	CHECK_EQ(pt_map(&A, root, 0, 0, 8ull << 30, PTE_W, PAGE_1G), 0);
	CHECK_EQ(used, 2); /* the root and one PDPT: eight 1 GiB pages */
	uint64_t pa, fl;
	unsigned shift;
	CHECK(pt_lookup(&A, root, 0x123456789ull, &pa, &fl, &shift));
	CHECK_EQ(pa, 0x123456789ull);
	CHECK_EQ(shift, PAGE_1G);
	CHECK(fl & PTE_W);
	CHECK(!pt_lookup(&A, root, 8ull << 30, &pa, &fl, &shift));
}

static void hole_with_decoy(void)
{
	/* The NPT shape: identity below and above a 16 MiB hole whose pages all show one decoy. */
	uint64_t root = fresh(POOL_PAGES);
	uint64_t hole = 0x1EE00000, end = hole + (16u << 20), decoy = 0x7000;
	CHECK_EQ(pt_map(&A, root, 0, 0, hole, PTE_W | PTE_U, PAGE_1G), 0);
	CHECK_EQ(pt_map(&A, root, end, end, (4ull << 30) - end, PTE_W | PTE_U, PAGE_1G), 0);
	for (uint64_t g = hole; g < end; g += 4096)
		CHECK_EQ(pt_map(&A, root, g, decoy, 4096, PTE_W | PTE_U, PAGE_4K), 0);
	uint64_t pa, fl;
	unsigned shift;
	for (uint64_t g = hole; g < end; g += 0x3F000) {
		CHECK(pt_lookup(&A, root, g + 0x123, &pa, &fl, &shift));
		CHECK_EQ(pa, decoy + 0x123);
	}
	CHECK(pt_lookup(&A, root, hole - 1, &pa, &fl, &shift));
	CHECK_EQ(pa, hole - 1);
	CHECK_EQ(shift, PAGE_2M);
	CHECK(pt_lookup(&A, root, end, &pa, &fl, &shift));
	CHECK_EQ(pa, end);
	CHECK(pt_lookup(&A, root, 3ull << 30, &pa, &fl, &shift));
	CHECK_EQ(shift, PAGE_1G);
	CHECK(fl & PTE_U);
}

static void high_half_4k(void)
{
	uint64_t root = fresh(POOL_PAGES);
	uint64_t va = 0xFFFFFFFF80101000ull, pa0 = 0x1EE00000;
	CHECK_EQ(pt_map(&A, root, va, pa0, 0x30000, PTE_W, PAGE_4K), 0);
	uint64_t pa, fl;
	unsigned shift;
	CHECK(pt_lookup(&A, root, va + 0x2FFFF, &pa, &fl, &shift));
	CHECK_EQ(pa, pa0 + 0x2FFFF);
	CHECK_EQ(shift, PAGE_4K);
	CHECK(!pt_lookup(&A, root, va - 1, &pa, &fl, &shift));
}

static void errors_are_reported(void)
{
	uint64_t root = fresh(POOL_PAGES);
	CHECK_EQ(pt_map(&A, root, 0x1001, 0, 4096, PTE_W, PAGE_4K), -1); /* misaligned */
	CHECK_EQ(pt_map(&A, root, 0, 0, 1ull << 30, PTE_W, PAGE_1G), 0);
	CHECK_EQ(pt_map(&A, root, 0x1000, 0x5000, 4096, PTE_W, PAGE_4K), -1); /* large page in the way */
	root = fresh(3);
	CHECK_EQ(pt_map(&A, root, 0, 0, 16 * 4096, PTE_W, PAGE_4K), -1); /* out of pages */
}

static void split_to_trap_one_page(void)
{
	/* A 1 GiB page split down to trap one 4 KiB page: everything else maps as before. */
	uint64_t root = fresh(POOL_PAGES);
	CHECK_EQ(pt_map(&A, root, 0, 0, 2ull << 30, PTE_W | PTE_U | PTE_NX, PAGE_1G), 0);
	uint64_t gpa = 0x4A3C5000, pa, fl;
	unsigned shift;
	uint64_t *e = pt_leaf_4k(&pt_x86, &A, root, gpa);
	CHECK(e != NULL);
	CHECK_EQ(used, 4); /* root, PDPT, one PD, one PT */
	CHECK_EQ(*e & PTE_ADDR, gpa);
	CHECK(*e & PTE_P);
	CHECK(!(*e & PTE_PS));
	CHECK(*e & PTE_NX);
	*e &= ~PTE_P;
	CHECK(!pt_lookup(&A, root, gpa + 0x123, &pa, &fl, &shift));
	CHECK(pt_lookup(&A, root, gpa - 1, &pa, &fl, &shift));
	CHECK_EQ(pa, gpa - 1);
	CHECK_EQ(shift, PAGE_4K);
	CHECK(pt_lookup(&A, root, gpa + 0x1000, &pa, &fl, &shift));
	CHECK_EQ(pa, gpa + 0x1000);
	CHECK(pt_lookup(&A, root, 0x40000000, &pa, &fl, &shift)); /* the rest of the 1 GiB: 2 MiB pages */
	CHECK_EQ(pa, 0x40000000);
	CHECK_EQ(shift, PAGE_2M);
	CHECK(fl & PTE_U);
	CHECK(pt_lookup(&A, root, 0x7FFFFFFF, &pa, &fl, &shift));
	CHECK_EQ(pa, 0x7FFFFFFF);
	CHECK(pt_lookup(&A, root, 0x3FFFFFFF, &pa, &fl, &shift)); /* the other 1 GiB page untouched */
	CHECK_EQ(shift, PAGE_1G);
	/* A second page in the same 2 MiB reuses the table; unmapped addresses give NULL. */
	CHECK(pt_leaf_4k(&pt_x86, &A, root, gpa + 0x2000) == e + 2);
	CHECK_EQ(used, 4);
	CHECK(pt_leaf_4k(&pt_x86, &A, root, 4ull << 30) == NULL);
	*e |= PTE_P;
	CHECK(pt_lookup(&A, root, gpa, &pa, &fl, &shift));
	/* Out of pages: the split fails cleanly. */
	root = fresh(2);
	CHECK_EQ(pt_map(&A, root, 0, 0, 1ull << 30, PTE_W, PAGE_1G), 0);
	CHECK(pt_leaf_4k(&pt_x86, &A, root, 0x1000) == NULL);
	CHECK(pt_lookup(&A, root, 0x1000, &pa, &fl, &shift));
	CHECK_EQ(shift, PAGE_1G);
}

/* The guest-physical tables (mm/stage2.c) in both formats: the same build, decoy and trap steps. */
static void stage2_formats(void)
{
	const struct pt_format *fmts[] = { &pt_x86, &pt_ept };
	for (unsigned i = 0; i < 2; i++) {
		const struct pt_format *f = fmts[i];
		uint64_t root = fresh(POOL_PAGES), hole = 0x1EE00000, end = hole + (2u << 20), decoy = 0x7000;
		CHECK_EQ(pt_map_fmt(f, &A, root, 0, 0, hole, f->rw, PAGE_1G), 0);
		CHECK_EQ(pt_map_fmt(f, &A, root, end, end, (4ull << 30) - end, f->rw, PAGE_1G), 0);
		for (uint64_t g = hole; g < end; g += 4096)
			CHECK_EQ(pt_map_fmt(f, &A, root, g, decoy, 4096, f->rw, PAGE_4K), 0);
		uint64_t pa, fl;
		unsigned shift;
		CHECK(pt_lookup_fmt(f, &A, root, hole + 0x5123, &pa, &fl, &shift));
		CHECK_EQ(pa, decoy + 0x123);
		CHECK(pt_lookup_fmt(f, &A, root, 3ull << 30, &pa, &fl, &shift));
		CHECK_EQ(shift, PAGE_1G);
		CHECK_EQ(fl & 0xFFF & ~f->large, f->rw & 0xFFF);
		CHECK(pt_writable(f, fl));
		/* A write trap on one page of a 1 GiB leaf: split, the page read-only, the rest kept. */
		uint64_t gpa = 0xC0345000;
		uint64_t *e = pt_leaf_4k(f, &A, root, gpa);
		CHECK(e != NULL);
		CHECK_EQ(*e & ~PTE_ADDR, f->rw); /* a 4 KiB leaf: no large bit, the leaf's bits kept */
		*e = pt_set_access(f, *e, PT_RO);
		CHECK(pt_lookup_fmt(f, &A, root, gpa, &pa, &fl, &shift));
		CHECK_EQ(pa, gpa);
		CHECK(!pt_writable(f, fl));
		*e = pt_set_access(f, *e, PT_NONE);
		CHECK(!pt_lookup_fmt(f, &A, root, gpa, &pa, &fl, &shift));
		CHECK_EQ(*e & 7, 0); /* x86: not present; EPT: no read, write or execute */
		CHECK(pt_lookup_fmt(f, &A, root, gpa + 0x1000, &pa, &fl, &shift));
		CHECK(pt_writable(f, fl));
		CHECK(pt_lookup_fmt(f, &A, root, 0xC0400000, &pa, &fl, &shift));
		CHECK_EQ(shift, PAGE_2M);
		*e = pt_set_access(f, *e, PT_RW);
		CHECK_EQ(*e, gpa | f->rw);
	}
	/* EPT's own bits: tables read/write/execute, leaves write-back (type 6 in bits 5:3). */
	uint64_t root = fresh(POOL_PAGES);
	CHECK_EQ(pt_map_fmt(&pt_ept, &A, root, 0x200000, 0x200000, 0x1000, pt_ept.rw, PAGE_4K), 0);
	uint64_t *top = fake_ptr(NULL, root);
	CHECK_EQ(top[0] & 0xFFF, 7);
	CHECK_EQ(pt_ept.rw, 7 | 6 << 3);
	CHECK_EQ(pt_ept.ro, 5 | 6 << 3);
	CHECK_EQ(pt_x86.rw, PTE_P | PTE_W | PTE_U);
}

TESTS(pagetable_tests) = {
	{ "pagetable: identity map with 1 GiB pages", identity_uses_large_pages },
	{ "pagetable: NPT hole mapped to a decoy page", hole_with_decoy },
	{ "pagetable: high-half image with 4 KiB pages", high_half_4k },
	{ "pagetable: misalignment, conflicts and exhaustion fail", errors_are_reported },
	{ "pagetable: a large page split to trap one 4 KiB page", split_to_trap_one_page },
	{ "pagetable: guest-physical tables in the NPT and EPT formats", stage2_formats },
	{ NULL, NULL },
};
