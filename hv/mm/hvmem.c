#include "mm/hvmem.h"
#include "mm/pagetable.h"
#include "boot/layout.h"
#include "core/pgalloc.h"
#include "core/panic.h"
#include "core/x86.h"

struct hv_memory hvmem;

extern char __image_start[], __image_end[], __load_start[], __bss_end_phys[];

/* Copy the image to `dst`, then switch to page tables `cr3` that map it at the same virtual
 * addresses. No memory is written between the copy and the switch, so the stack (part of the
 * image) arrives intact. */
void relocate(void *dst, const void *src, u64 len, u64 cr3);
__asm__(".text\n"
	"relocate:\n\t" /* rdi = dst, rsi = src, rdx = len, rcx = cr3 */
	"mov %rcx, %rax\n\t"
	"mov %rdx, %rcx\n\t"
	"rep movsb\n\t"
	"mov %rax, %cr3\n\t"
	"ret\n");

const void *hvmem_outside(u64 pa, u64 len)
{
	if (pa + len < pa || pa + len > hvmem.phys_top || (pa < hvmem.end && pa + len > hvmem.base))
		return NULL;
	return phys_ptr(pa);
}

static u64 pt_page(void *ctx)
{
	(void)ctx;
	return pgalloc(1);
}

static void *pt_ptr(void *ctx, u64 pa)
{
	(void)ctx;
	return (void *)pa;
}

const struct pt_alloc hv_pt_alloc = { pt_page, pt_ptr, NULL };

static void choose_page_size_and_top(void)
{
	u32 a, b, c, d;
	unsigned bits = cpu_phys_bits();
	cpuid(0x80000001, 0, &a, &b, &c, &d);
	if (d & CPUID_80000001_EDX_1GB) {
		hvmem.max_page_shift = PAGE_1G;
		if (bits > 46)
			bits = 46; /* 64 TiB of guest-physical space: 128 pages of tables */
		hvmem.phys_top = 1ull << bits;
	} else {
		/* Without 1 GiB pages, map what the memory map names, and all of the low 4 GiB. */
		hvmem.max_page_shift = PAGE_2M;
		u64 top = GiB(4);
		for (u32 i = 0; i < hvmem.guest_map.n; i++) {
			u64 e = hvmem.guest_map.e[i].base + hvmem.guest_map.e[i].len;
			if (e > top)
				top = e;
		}
		hvmem.phys_top = ALIGN_UP(top, GiB(1));
	}
}

void hvmem_setup(const struct boot_info *bi)
{
	struct range excl[2 + BOOT_MODS_MAX];
	unsigned n = 0;
	excl[n++] = (struct range){ (u64)__load_start, (u64)__bss_end_phys };
	excl[n++] = bi->mbi;
	for (unsigned i = 0; i < bi->nmods; i++)
		excl[n++] = (struct range){ bi->mods[i].start, bi->mods[i].end };

	u64 base;
	if (!memmap_find_top(&bi->map, HV_REGION_SIZE, MiB(2), GiB(4), excl, n, &base))
		panic("mem: no %lu MiB of RAM below 4 GiB for the hypervisor", (u64)HV_REGION_SIZE >> 20);
	hvmem.base = base;
	hvmem.end = base + HV_REGION_SIZE;
	hvmem.image_size = ALIGN_UP((u64)(__image_end - __image_start), PAGE_SIZE);

	hvmem.guest_map = bi->map;
	if (!memmap_carve(&hvmem.guest_map, base, HV_REGION_SIZE, E820_RESERVED))
		panic("mem: the memory map has too many entries to edit");
	choose_page_size_and_top();

	pgalloc_init(base + hvmem.image_size, hvmem.end);
	u64 root = pgalloc(1);
	if (pt_map(&hv_pt_alloc, root, 0, 0, hvmem.phys_top, PTE_W, hvmem.max_page_shift) ||
	    pt_map(&hv_pt_alloc, root, (u64)__image_start, base, hvmem.image_size, PTE_W, PAGE_4K))
		panic("mem: cannot build the host page tables");

	relocate((void *)base, __image_start, hvmem.image_size, root);
}
