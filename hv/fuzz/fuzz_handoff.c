/* libFuzzer: where a handed-over record may lie (policy_place_problem) against a QEMU-like map
 * with Parapet's region, and the bzImage checks and zero page of the preboot kernel loader. */
#include "fuzz.h"
#include "handoff/policy.h"
#include "guest/linux.h"

#define HV_BASE 0x1EE00000ull
#define HV_END 0x1FE00000ull

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static struct memmap m;
	if (!m.n) {
		memmap_add(&m, 0, 0x9F400, E820_RAM);
		memmap_add(&m, 0x9F400, 0x800, E820_RESERVED);
		memmap_add(&m, 0x100000, HV_BASE - 0x100000, E820_RAM);
		memmap_add(&m, HV_BASE, HV_END - HV_BASE, E820_RESERVED);
		memmap_add(&m, HV_END, 0x1FFE0000 - HV_END, E820_RAM);
		memmap_add(&m, 0x100000000ull, 0x40000000, E820_RAM);
	}
	const u8 *p = data;
	size_t n = size;
	u64 gpa = take(&p, &n, 8), len = take(&p, &n, 3);
	bool bad_len;
	if (!policy_place_problem(&m, HV_BASE, HV_END, gpa, len, &bad_len)) {
		/* Accepted: a non-empty record of at most 64 KiB, all RAM, none of it Parapet's. */
		if (len == 0 || len > POLICY_MAX_SIZE || gpa + len < gpa || (gpa < HV_END && gpa + len > HV_BASE) ||
		    !memmap_is_ram(&m, gpa, len))
			abort();
	}

	struct linux_image li;
	if (linux_parse(p, n, &li) != NULL)
		return 0;
	if (li.setup_bytes + li.code_bytes != n || li.init_size < li.code_bytes || (li.align & (li.align - 1)))
		abort();
	static u8 zp[LX_ZERO_PAGE_SIZE];
	u64 load = 0x10000000 & ~(li.align - 1);
	if (linux_zero_page(zp, p, &li, &m, load, 0x11000, 0x2000000, 0x100000) == NULL &&
	    (zp[LX_HEADER] != 'H' || zp[LX_E820_ENTRIES] != m.n))
		abort();
	return 0;
}
