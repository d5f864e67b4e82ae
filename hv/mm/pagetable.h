/*
 * x86-64 4-level page tables (AMD APM vol. 2 §5.3, Intel SDM vol. 3 §4.5), used both for the
 * host's own address space and for the nested page tables (NPT) that map guest-physical to
 * host-physical memory. The builder is hardware-free so it runs in host unit tests.
 */
#ifndef PARAPET_PAGETABLE_H
#define PARAPET_PAGETABLE_H

#include "core/types.h"

#define PTE_P   (1ull << 0)   /* present */
#define PTE_W   (1ull << 1)   /* writable */
#define PTE_U   (1ull << 2)   /* user; NPT walks are user accesses, so NPT entries set it */
#define PTE_PS  (1ull << 7)   /* page size: 1 GiB in a PDPTE, 2 MiB in a PDE */
#define PTE_NX  (1ull << 63)
#define PTE_ADDR 0x000FFFFFFFFFF000ull

#define PAGE_4K 12
#define PAGE_2M 21
#define PAGE_1G 30

struct pt_alloc {
	u64 (*alloc)(void *ctx);           /* a zeroed page; returns its physical address or 0 */
	void *(*ptr)(void *ctx, u64 pa);   /* where the host can access physical address pa */
	void *ctx;
};

/*
 * Map [va, va+size) to [pa, pa+size) with leaf flags `flags`, using pages up to
 * 1 << max_shift (PAGE_4K, PAGE_2M or PAGE_1G) where alignment allows. va, pa and size
 * must be 4 KiB aligned. Returns 0, or -1 on misalignment, allocation failure, or an
 * existing large page in the way.
 */
int pt_map(const struct pt_alloc *a, u64 root, u64 va, u64 pa, u64 size, u64 flags, unsigned max_shift);

/* Translate va; returns false when not mapped. *flags gets the leaf entry's low flag bits. */
bool pt_lookup(const struct pt_alloc *a, u64 root, u64 va, u64 *pa, u64 *flags, unsigned *shift);

/*
 * The 4 KiB leaf entry that maps va, splitting any 1 GiB or 2 MiB page on the way into 512
 * smaller pages that map the same memory with the same flags. NULL when va is not mapped or a
 * table cannot be allocated. The caller flushes TLBs if the tables are live.
 */
u64 *pt_leaf_4k(const struct pt_alloc *a, u64 root, u64 va);

#endif
