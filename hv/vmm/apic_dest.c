/* Which CPUs an IPI addresses, and which LVT writes would deliver INIT: see apic.h. No
 * hardware access, so the host unit tests cover them (test/test_apic.c). */
#include "vmm/apic.h"
#include "core/lapic.h"

#define DFR_FLAT 0xFu /* DFR bits 31:28: flat model; 0 is the cluster model */

bool apic_ipi_addresses(const struct vcpu *from, const struct vcpu *to, u32 lo, u32 dest, bool x2)
{
	switch (ICR_SHORTHAND(lo)) {
	case ICR_SELF:
		return to == from;
	case ICR_ALL:
		return true;
	case ICR_ALL_BUT_SELF:
		return to != from;
	}
	u32 broadcast = x2 ? 0xFFFFFFFFu : 0xFFu;
	if (!x2)
		dest &= 0xFF;
	if (dest == broadcast)
		return true;
	if (!(lo & ICR_LOGICAL))
		return dest == to->apic_id;
	if (x2) {
		/* x2APIC logical ID: cluster (ID / 16) in 31:16, bit (ID % 16) in 15:0. */
		u32 ldr = (to->apic_id >> 4) << 16 | 1u << (to->apic_id & 15);
		return (dest >> 16) == (ldr >> 16) && (dest & ldr & 0xFFFF);
	}
	u32 id = to->ldr >> 24;
	if ((to->dfr >> 28) == DFR_FLAT)
		return (dest & id) != 0;
	return (dest >> 4) == (id >> 4) && (dest & id & 0xF);
}

bool apic_lvt_init(u32 off, u32 val)
{
	bool lvt = off == APIC_LVT_CMCI || (off >= APIC_LVT_TIMER && off <= APIC_LVT_ERROR);
	return lvt && ICR_MODE(val) == ICR_MODE_INIT;
}
