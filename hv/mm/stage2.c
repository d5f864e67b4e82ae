#include "mm/stage2.h"
#include "mm/hvmem.h"
#include "core/pgalloc.h"
#include "core/panic.h"

static const struct pt_format *fmt;
static u64 root;

u64 stage2_build(const struct pt_format *f)
{
	u64 r = pgalloc(1);
	u64 decoy = pgalloc(1);
	const struct pt_alloc *a = &hv_pt_alloc;
	unsigned ps = hvmem.max_page_shift;
	if (pt_map_fmt(f, a, r, 0, 0, hvmem.base, f->rw, ps) ||
	    pt_map_fmt(f, a, r, hvmem.end, hvmem.end, hvmem.phys_top - hvmem.end, f->rw, ps))
		panic("stage2: cannot map guest memory");
	for (u64 gpa = hvmem.base; gpa < hvmem.end; gpa += PAGE_SIZE)
		if (pt_map_fmt(f, a, r, gpa, decoy, PAGE_SIZE, f->rw, PAGE_4K))
			panic("stage2: cannot map the decoy page");
	fmt = f;
	root = r;
	return r;
}

bool stage2_trap(u64 gpa, enum pt_access access)
{
	if (!root || (gpa >= hvmem.base && gpa < hvmem.end))
		return false;
	u64 *e = pt_leaf_4k(fmt, &hv_pt_alloc, root, gpa);
	if (!e)
		return false;
	u64 x = pt_set_access(fmt, __atomic_load_n(e, __ATOMIC_RELAXED), access);
	__atomic_store_n(e, x, __ATOMIC_RELEASE); /* one store: never a transient access */
	return true;
}

bool stage2_allows(u64 gpa, bool write)
{
	u64 pa, flags;
	unsigned shift;
	if (!root || !pt_lookup_fmt(fmt, &hv_pt_alloc, root, gpa, &pa, &flags, &shift))
		return false;
	return !write || pt_writable(fmt, flags);
}
