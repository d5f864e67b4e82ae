#include "vmm/gmem.h"

static const struct memmap *map;

void gmem_init(const struct memmap *guest_map)
{
	map = guest_map;
}

void *gmem_map(u64 gpa, u64 len)
{
	if (!map || !memmap_is_ram(map, gpa, len))
		return NULL;
	return (void *)(uintptr_t)gpa;
}
