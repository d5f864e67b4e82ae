#include "mm/npt.h"
#include "mm/hvmem.h"
#include "mm/pagetable.h"
#include "core/pgalloc.h"
#include "core/panic.h"

#define NPT_FLAGS (PTE_W | PTE_U)

static u64 npt_root;

u64 npt_build(void)
{
	u64 root = pgalloc(1);
	u64 decoy = pgalloc(1);
	const struct pt_alloc *a = &hv_pt_alloc;
	unsigned ps = hvmem.max_page_shift;
	if (pt_map(a, root, 0, 0, hvmem.base, NPT_FLAGS, ps) ||
	    pt_map(a, root, hvmem.end, hvmem.end, hvmem.phys_top - hvmem.end, NPT_FLAGS, ps))
		panic("npt: cannot map guest memory");
	for (u64 gpa = hvmem.base; gpa < hvmem.end; gpa += PAGE_SIZE)
		if (pt_map(a, root, gpa, decoy, PAGE_SIZE, NPT_FLAGS, PAGE_4K))
			panic("npt: cannot map the decoy page");
	npt_root = root;
	return root;
}

bool npt_trap(u64 gpa, enum npt_access access)
{
	if (!npt_root || (gpa >= hvmem.base && gpa < hvmem.end))
		return false;
	u64 *e = pt_leaf_4k(&hv_pt_alloc, npt_root, gpa);
	if (!e)
		return false;
	u64 x = __atomic_load_n(e, __ATOMIC_RELAXED) | PTE_P | PTE_W;
	if (access == NPT_RO)
		x &= ~PTE_W;
	else if (access == NPT_NONE)
		x &= ~PTE_P;
	__atomic_store_n(e, x, __ATOMIC_RELEASE); /* one store: never a transient access */
	return true;
}

bool npt_allows(u64 gpa, bool write)
{
	u64 pa, flags;
	unsigned shift;
	if (!npt_root || !pt_lookup(&hv_pt_alloc, npt_root, gpa, &pa, &flags, &shift))
		return false;
	return !write || (flags & PTE_W);
}
