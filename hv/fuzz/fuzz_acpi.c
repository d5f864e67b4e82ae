/* libFuzzer: the ACPI tables Parapet reads from firmware memory (root table walk, DMAR, MADT)
 * and the root-table edit that hides the IOMMU. The input is "physical" memory from 0x1000,
 * found through a fixed RSDP; checksums are fixed up half the time so the parsers behind them run. */
#include "io/acpi.h"
#include "iommu/dmar.h"
#include <stdlib.h>
#include <string.h>

#define MEM (0x100000)
static u8 mem[MEM];

static const void *map(u64 pa, u64 len)
{
	return pa < MEM && len <= MEM - pa ? mem + pa : NULL;
}

static void fix_sum(u8 *p, u32 len, unsigned at)
{
	u8 s = 0;
	p[at] = 0;
	for (u32 i = 0; i < len; i++)
		s = (u8)(s + p[i]);
	p[at] = (u8)-s;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	if (size > 0x10000)
		return 0;
	memset(mem, 0, 0x12000);
	memcpy(mem + 0x1000, data, size);
	/* Fix the checksum of a table header at every 256 bytes of the input. */
	if (size & 1)
		for (u32 off = 0x1000; off + 36 <= 0x1000 + size; off += 256) {
			u32 len;
			memcpy(&len, mem + off + 4, 4);
			if (len >= 36 && (u64)off + len <= 0x1000 + size)
				fix_sum(mem + off, len, 9);
		}
	u8 *r = mem + 0xE0000;
	memset(r, 0, 36);
	memcpy(r, "RSD PTR ", 8);
	r[15] = 2;
	u32 rlen = 36, rsdt = 0x1000;
	u64 xsdt = size & 2 ? 0x1000 : 0;
	memcpy(r + 16, &rsdt, 4);
	memcpy(r + 20, &rlen, 4);
	memcpy(r + 24, &xsdt, 8);
	fix_sum(r, 20, 8);
	fix_sum(r, 36, 32);

	u64 rsdp = acpi_find_rsdp(map);
	if (rsdp != 0xE0000)
		abort();
	u64 dmar = acpi_find_table(map, rsdp, "DMAR");
	u32 len;
	const u8 *t = dmar ? acpi_table(map, dmar, &len) : NULL;
	struct dmar_info d;
	if (t && !dmar_parse(t, len, &d) && (d.nunits == 0 || d.nunits > IOMMU_UNITS_MAX || d.nrmrr > IOMMU_FIXED_MAX))
		abort();
	u32 ids[16];
	u64 apic = acpi_find_table(map, rsdp, "APIC");
	if (acpi_madt_cpus(map, apic, ids, 16) > 16)
		abort();
	unsigned removed = acpi_unlist(map, rsdp, "DMAR");
	if (removed && acpi_find_table(map, rsdp, "DMAR"))
		abort(); /* what was taken out cannot be found again */
	return 0;
}
