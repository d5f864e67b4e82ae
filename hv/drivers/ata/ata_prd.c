#include "drivers/ata/ata_prd.h"
#include "vmm/gmem.h"
#include "core/string.h"

#define BOUNDARY 0x10000u

const char *prd_fetch(u64 table_pa, struct prd_list *l)
{
	l->n = 0;
	l->total = 0;
	if (table_pa & 3)
		return "PRD table not dword aligned";
	u64 room = BOUNDARY - (table_pa & (BOUNDARY - 1)); /* bytes before the 64 KiB boundary */
	for (unsigned i = 0; i < room / sizeof(struct prd); i++) {
		const struct prd *t = gmem_map(table_pa + i * sizeof(struct prd), sizeof(struct prd));
		if (!t)
			return "PRD table not in guest RAM";
		struct prd e;
		memcpy(&e, t, sizeof(e)); /* one read of each entry: the guest may be rewriting it */
		u32 len = e.count_eot & 0xFFFF;
		if (len == 0)
			len = BOUNDARY;
		if ((e.addr & 1) || (len & 1))
			return "PRD buffer not word aligned";
		if ((e.addr & (BOUNDARY - 1)) + len > BOUNDARY)
			return "PRD buffer crosses a 64 KiB boundary";
		if (!gmem_map(e.addr, len))
			return "PRD buffer not in guest RAM";
		l->e[l->n].addr = e.addr;
		l->e[l->n].len = len;
		l->n++;
		l->total += len;
		if (e.count_eot & PRD_EOT)
			return NULL;
	}
	return "PRD table has no end mark before a 64 KiB boundary";
}

unsigned prd_build(struct prd *table, unsigned max, u64 pa, u64 len)
{
	unsigned n = 0;
	while (len) {
		if (n == max)
			return 0;
		u64 chunk = BOUNDARY - (pa & (BOUNDARY - 1));
		if (chunk > len)
			chunk = len;
		table[n].addr = (u32)pa;
		table[n].count_eot = (u32)(chunk & 0xFFFF); /* 64 KiB is written as 0 */
		n++;
		pa += chunk;
		len -= chunk;
	}
	if (n)
		table[n - 1].count_eot |= PRD_EOT;
	return n;
}

void prd_emit(const struct prd_list *l, struct prd *table)
{
	for (unsigned i = 0; i < l->n; i++) {
		table[i].addr = (u32)l->e[i].addr;
		table[i].count_eot = (l->e[i].len & 0xFFFF) | (i + 1 == l->n ? PRD_EOT : 0);
	}
}
