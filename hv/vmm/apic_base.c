/* Which pages the xAPIC may move to under Parapet: see apic.h. */
#include "vmm/apic.h"
#include "core/lapic.h"

bool apic_base_usable(u64 page, u64 boot, const struct memmap *m, u64 hv_base, u64 hv_end)
{
	if (page == boot || (page >= APIC_MSI_BASE && page < APIC_MSI_END))
		return true; /* the interrupt range is trapped whole (apic_init) */
	if (page < MiB(1) || (page < hv_end && page + PAGE_SIZE > hv_base))
		return false;
	for (u32 i = 0; i < m->n; i++)
		if (page < m->e[i].base + m->e[i].len && m->e[i].base < page + PAGE_SIZE)
			return false;
	return true;
}
