/* libFuzzer: the \_Sn search over arbitrary AML (the input after its first byte, which picks n,
 * held in a buffer of exactly its length so ASan sees any read past it), then the FADT and DSDT
 * reader over "physical" memory holding the input from 0x1000: the FADT at 0x1000; bits of the
 * first byte fix up its header, point it at a DSDT 512 bytes on and fix up checksums, so the
 * code behind them runs. */
#include "power/acpi_pm.h"
#include <stdlib.h>
#include <string.h>

#define MEM 0x20000
#define BASE 0x1000
static u8 mem[MEM];

static const void *map(u64 pa, u64 len)
{
	return pa < MEM && len <= MEM - pa ? mem + pa : NULL;
}

static void fix_sum(u8 *p, u32 len)
{
	u8 s = 0;
	p[9] = 0;
	for (u32 i = 0; i < len; i++)
		s = (u8)(s + p[i]);
	p[9] = (u8)-s;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	if (size < 1 || size > MEM - BASE)
		return 0;
	u8 ctl = data[0], a = 0xEE, b = 0xEE;
	u8 *aml = malloc(size - 1 ? size - 1 : 1);
	memcpy(aml, data + 1, size - 1);
	bool found = aml_sleep_type(aml, (u32)(size - 1), ctl % 7, &a, &b);
	free(aml);
	if (found ? (ctl % 7 > 5 || a > 7 || b > 7) : (a != 0xEE || b != 0xEE))
		abort();

	memset(mem, 0, MEM);
	memcpy(mem + BASE, data, size);
	u32 flen = size < 276 ? (u32)size : 276, dsdt = BASE + 512, dlen = (u32)size - 512;
	if (ctl & 0x10) { /* a FADT of (up to) the whole input */
		memcpy(mem + BASE, "FACP", 4);
		memcpy(mem + BASE + 4, &flen, 4);
	}
	if ((ctl & 0x80) && size >= 512 + 36) { /* X_DSDT 0, DSDT: the input from 512 on */
		memcpy(mem + BASE + 40, &dsdt, 4);
		memset(mem + BASE + 140, 0, 8);
		memcpy(mem + dsdt, "DSDT", 4);
		memcpy(mem + dsdt + 4, &dlen, 4);
	}
	/* Fix up the checksums: the DSDT's first, then the FADT's (its own byte 9 is in no DSDT). */
	if (ctl & 0x20)
		for (int off = 512; off >= 0; off -= 512) {
			u32 len;
			memcpy(&len, mem + BASE + off + 4, 4);
			if (len >= 36 && (u64)off + len <= size)
				fix_sum(mem + BASE + off, len);
		}
	struct acpi_pm pm;
	char why[64];
	bool ok = acpi_pm_read(map, BASE, &pm, why, ctl & 0x40 ? sizeof(why) : 0);
	if (pm.fadt != BASE || ((ctl & 0x40) && !ok && strnlen(why, sizeof(why)) == sizeof(why)))
		abort();
	for (unsigned s = 0; s < 6; s++)
		if (pm.slp_typa[s] > 7 || pm.slp_typb[s] > 7 ||
		    (!pm.sx_present[s] && (pm.slp_typa[s] || pm.slp_typb[s])))
			abort();
	if (!ok && (pm.dsdt || pm.pm1a_cnt || pm.sx_present[5]))
		abort();
	return 0;
}
