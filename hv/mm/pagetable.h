/*
 * Radix page tables of 512 entries a level, one builder for every format Parapet writes:
 * x86-64 4-level paging (AMD APM vol. 2 §5.3, Intel SDM vol. 3 §4.5) for the host's own
 * address space and AMD's nested page tables (NPT), Intel's extended page tables (EPT, SDM
 * vol. 3 §29.3.2), and the IOMMUs' DMA translation tables: VT-d second-level tables (VT-d
 * spec §9.8, 3 or 4 levels) and AMD-Vi page tables (AMD IOMMU spec §2.2.3). A format
 * descriptor says how the levels and entries differ. In every format bit 0 means present (P,
 * EPT's and VT-d's Read, AMD-Vi's PR: Parapet writes no entry that has another access without
 * read) and bits 51:12 hold the next address.
 * The builder is hardware-free so it runs in host unit tests.
 */
#ifndef PARAPET_PAGETABLE_H
#define PARAPET_PAGETABLE_H

#include "core/types.h"

#define PTE_P (1ull << 0)  /* present */
#define PTE_W (1ull << 1)  /* writable */
#define PTE_U (1ull << 2)  /* user; NPT walks are user accesses, so NPT entries set it */
#define PTE_PS (1ull << 7) /* page size: 1 GiB in a PDPTE, 2 MiB in a PDE */
#define PTE_NX (1ull << 63)
#define PTE_ADDR 0x000FFFFFFFFFF000ull

#define PAGE_4K 12
#define PAGE_2M 21
#define PAGE_1G 30

struct pt_format {
	unsigned top_shift; /* what one top-level entry maps: 39 (4 levels), 30 (3 levels) */
	u64 table;          /* bits of an entry that points to a next-level table */
	u64 large;          /* bit that marks a leaf above 4 KiB (PS), where `next_level` is false */
	bool next_level;    /* AMD-Vi: bits 11:9 hold the level of the table an entry points to,
			       * 0 in a leaf of any size */
	u64 pat_large;      /* x86: the PAT bit of a large leaf (12), bit 7 in a 4 KiB leaf; else 0 */
	u64 rw;             /* a leaf's bits for full access (EPT: with its memory type) */
	u64 ro;             /* a leaf's bits for reads (and fetches) only */
};

/* x86-64 paging as the CPU walks it: the host's tables and AMD's NPT (NPT walks are user
 * accesses, so its leaves set U). */
extern const struct pt_format pt_x86;
/* Intel's EPT: read, write, execute in bits 2:0, large pages by bit 7, memory type in 5:3 of a
 * leaf (write-back: the guest's PAT then decides, as without EPT on RAM; MMIO ranges need the
 * MTRRs' type, left to the VMX backend). */
extern const struct pt_format pt_ept;

/* What a guest (or device) may do with a page. */
enum pt_access {
	PT_RW,   /* mapped */
	PT_RO,   /* writes fault: a write trap */
	PT_NONE, /* every access faults: a trap page */
};

/* Leaf entry e with its access bits made those of `access` in format f; the address and the
 * other bits are kept. */
static inline u64 pt_set_access(const struct pt_format *f, u64 e, enum pt_access access)
{
	return (e & ~f->rw) | (access == PT_RW ? f->rw : access == PT_RO ? f->ro : 0);
}

/* Whether leaf bits `flags` (pt_lookup_fmt) allow writes in format f. */
static inline bool pt_writable(const struct pt_format *f, u64 flags)
{
	return (flags & f->rw & ~f->ro) != 0;
}

struct pt_alloc {
	u64 (*alloc)(void *ctx);         /* a zeroed page; returns its physical address or 0 */
	void *(*ptr)(void *ctx, u64 pa); /* where the host can access physical address pa */
	void *ctx;
};

/*
 * Map [va, va+size) to [pa, pa+size) with leaf flags `flags`, using pages up to
 * 1 << max_shift (PAGE_4K, PAGE_2M or PAGE_1G) where alignment allows. va, pa and size
 * must be 4 KiB aligned. Returns 0, or -1 on misalignment, allocation failure, or an
 * existing larger page in the way that maps elsewhere (one that maps va to pa already is kept).
 */
int pt_map_fmt(const struct pt_format *f, const struct pt_alloc *a, u64 root, u64 va, u64 pa, u64 size, u64 flags,
    unsigned max_shift);

/* Translate va; returns false when not mapped. *flags gets the leaf entry's bits other than the
 * address (the low 12 bits, and bits 63:52). */
bool pt_lookup_fmt(const struct pt_format *f, const struct pt_alloc *a, u64 root, u64 va, u64 *pa, u64 *flags,
    unsigned *shift);

static inline int pt_map(const struct pt_alloc *a, u64 root, u64 va, u64 pa, u64 size, u64 flags, unsigned max_shift)
{
	return pt_map_fmt(&pt_x86, a, root, va, pa, size, flags, max_shift);
}

static inline bool pt_lookup(const struct pt_alloc *a, u64 root, u64 va, u64 *pa, u64 *flags, unsigned *shift)
{
	bool ok = pt_lookup_fmt(&pt_x86, a, root, va, pa, flags, shift);
	*flags &= ok ? 0xFFF : 0;
	return ok;
}

/*
 * Formats with a large-page bit (not AMD-Vi). The 4 KiB leaf entry that maps va, splitting any
 * 1 GiB or 2 MiB page on the way into 512 smaller pages that map the same memory with the same
 * flags. NULL when va is not mapped or a table cannot be allocated. The caller flushes TLBs if
 * the tables are live.
 */
u64 *pt_leaf_4k(const struct pt_format *f, const struct pt_alloc *a, u64 root, u64 va);

#endif
