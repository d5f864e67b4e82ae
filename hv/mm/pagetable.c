#include "mm/pagetable.h"

#define PTE_PAT_LARGE (1ull << 12)
#define PTE_PAT_4K (1ull << 7)
#define EPT_R (1ull << 0)
#define EPT_W (1ull << 1)
#define EPT_X (1ull << 2)
#define EPT_WB (6ull << 3)

const struct pt_format pt_x86 = { .top_shift = 39,
	.table = PTE_P | PTE_W | PTE_U,
	.large = PTE_PS,
	.pat_large = PTE_PAT_LARGE,
	.rw = PTE_P | PTE_W | PTE_U,
	.ro = PTE_P | PTE_U };
const struct pt_format pt_ept = { .top_shift = 39,
	.table = EPT_R | EPT_W | EPT_X,
	.large = PTE_PS,
	.rw = EPT_R | EPT_W | EPT_X | EPT_WB,
	.ro = EPT_R | EPT_X | EPT_WB };

#define NEXT_LEVEL(e) (((e) >> 9) & 7)

/* The level of the entries that map 1 << shift bytes: 1 for 4 KiB, 2 for 2 MiB, ... */
static unsigned level_of(unsigned shift)
{
	return (shift - PAGE_4K) / 9 + 1;
}

static bool is_leaf(const struct pt_format *f, u64 e, unsigned shift)
{
	if (shift == PAGE_4K)
		return true;
	return f->next_level ? NEXT_LEVEL(e) == 0 : (e & f->large) != 0;
}

static u64 *table(const struct pt_alloc *a, u64 pa)
{
	return a->ptr(a->ctx, pa & PTE_ADDR);
}

static int map_one(const struct pt_format *f, const struct pt_alloc *a, u64 root, u64 va, u64 pa, u64 flags,
    unsigned shift)
{
	u64 *t = table(a, root);
	for (unsigned level_shift = f->top_shift; level_shift > shift; level_shift -= 9) {
		u64 *e = &t[(va >> level_shift) & 511];
		if (!(*e & PTE_P)) {
			u64 next = a->alloc(a->ctx);
			if (!next)
				return -1;
			*e = next | f->table | PTE_P | (f->next_level ? (u64)(level_of(level_shift) - 1) << 9 : 0);
		} else if (is_leaf(f, *e, level_shift)) {
			/* A larger page is in the way: fine when it already maps va to pa. */
			u64 mask = (1ull << level_shift) - 1;
			return ((*e & PTE_ADDR & ~mask) | (va & mask)) == pa ? 0 : -1;
		}
		t = table(a, *e);
	}
	u64 large = shift > PAGE_4K && !f->next_level ? f->large : 0;
	t[(va >> shift) & 511] = (pa & PTE_ADDR) | flags | PTE_P | large;
	return 0;
}

int pt_map_fmt(const struct pt_format *f, const struct pt_alloc *a, u64 root, u64 va, u64 pa, u64 size, u64 flags,
    unsigned max_shift)
{
	if ((va | pa | size) & (PAGE_SIZE - 1) || max_shift > f->top_shift)
		return -1;
	/* Below 4 levels the table covers less than the address space: nothing may wrap around. */
	if (f->top_shift < 39 && (va + size < va || va + size > 1ull << (f->top_shift + 9)))
		return -1;
	while (size) {
		unsigned shift = PAGE_4K;
		for (unsigned s = max_shift; s > PAGE_4K; s -= 9) {
			u64 ps = 1ull << s;
			if (!((va | pa) & (ps - 1)) && size >= ps) {
				shift = s;
				break;
			}
		}
		if (map_one(f, a, root, va, pa, flags, shift))
			return -1;
		va += 1ull << shift;
		pa += 1ull << shift;
		size -= 1ull << shift;
	}
	return 0;
}

bool pt_lookup_fmt(const struct pt_format *f, const struct pt_alloc *a, u64 root, u64 va, u64 *pa, u64 *flags,
    unsigned *shift)
{
	u64 *t = table(a, root);
	for (unsigned s = f->top_shift;; s -= 9) {
		u64 e = t[(va >> s) & 511];
		if (!(e & PTE_P))
			return false;
		if (is_leaf(f, e, s)) {
			u64 mask = (1ull << s) - 1;
			*pa = (e & PTE_ADDR & ~mask) | (va & mask);
			*flags = e & ~PTE_ADDR;
			*shift = s;
			return true;
		}
		t = table(a, e);
	}
}

/* Replace the large page in *e (mapping 1 << shift bytes) by a table of 512 pages. */
static int split(const struct pt_format *f, const struct pt_alloc *a, u64 *e, unsigned shift)
{
	u64 next = a->alloc(a->ctx);
	if (!next)
		return -1;
	u64 *t = table(a, next);
	unsigned cs = shift - 9;
	u64 pa = *e & PTE_ADDR & ~((1ull << shift) - 1);
	u64 flags = *e & (0xFFF | PTE_NX);
	if (cs == PAGE_4K) {
		flags &= ~f->large;
		if (*e & f->pat_large)
			flags |= PTE_PAT_4K;
	} else {
		flags |= *e & f->pat_large;
	}
	for (u64 i = 0; i < 512; i++)
		t[i] = (pa + (i << cs)) | flags;
	*e = next | f->table | PTE_P;
	return 0;
}

u64 *pt_leaf_4k(const struct pt_format *f, const struct pt_alloc *a, u64 root, u64 va)
{
	u64 *t = table(a, root);
	for (unsigned s = f->top_shift; s > PAGE_4K; s -= 9) {
		u64 *e = &t[(va >> s) & 511];
		if (!(*e & PTE_P))
			return NULL;
		if ((*e & f->large) && split(f, a, e, s))
			return NULL;
		t = table(a, *e);
	}
	return &t[(va >> PAGE_4K) & 511];
}
