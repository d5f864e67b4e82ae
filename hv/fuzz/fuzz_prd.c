/* libFuzzer: the guest's PRD table, as prd_fetch() reads it, then scatter/gather over it. */
#include "drivers/ata/ata_prd.h"
#include "vmm/gmem.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RAM_BASE 0x40000000ul
#define RAM_SIZE (192 * 1024)

static struct memmap map;
static struct prd_list list;
static u8 buf[4 * 65536];

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static u8 *ram;
	if (!ram) {
		ram = mmap((void *)RAM_BASE, RAM_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (ram == MAP_FAILED)
			abort();
		/* Guest RAM is the first 128 KiB; the last 64 KiB stand for memory the guest may not
		 * touch (Parapet's or MMIO): nothing may ever be read or written there. */
		memmap_add(&map, RAM_BASE, 128 * 1024, E820_RAM);
		gmem_init(&map);
	}
	if (size < 8)
		return 0;
	u32 table, off;
	memcpy(&table, data, 4);
	memcpy(&off, data + 4, 4);
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + 8, size - 8 < 128 * 1024 ? size - 8 : 128 * 1024);
	memset(ram + 128 * 1024, 0xA5, 64 * 1024);

	u64 table_pa = RAM_BASE + (table % RAM_SIZE);
	if (prd_fetch(table_pa, &list) == NULL) {
		u64 total = 0;
		if (list.n == 0 || list.n > PRD_MAX_ENTRIES)
			abort();
		for (unsigned i = 0; i < list.n; i++) {
			u64 a = list.e[i].addr, l = list.e[i].len;
			if (a < RAM_BASE || a + l > RAM_BASE + 128 * 1024 || (a & 1) || (l & 1) || l == 0 ||
			    (a & 0xFFFF) + l > 0x10000)
				abort();
			total += l;
		}
		if (total != list.total)
			abort();
		u64 o = off % (list.total + 1), len = (list.total - o) % sizeof(buf);
		prd_copy(&list, o, buf, len, false);
		prd_copy(&list, o, buf, len, true);
	}
	for (unsigned i = 128 * 1024; i < RAM_SIZE; i++)
		if (ram[i] != 0xA5)
			abort();
	return 0;
}
