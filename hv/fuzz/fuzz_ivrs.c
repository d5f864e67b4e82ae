/* libFuzzer: the IVRS parser on arbitrary tables (the input after a fixed 48-byte header, so
 * the blocks get explored), held in a buffer of exactly their length so ASan sees any read past
 * the end; what it accepts is checked against the parser's promises. */
#include "iommu/ivrs.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	if (size > 65536)
		return 0;
	/* Odd first byte: the input is the whole table, header included (signature patched). */
	bool whole = size && (data[0] & 1);
	size_t len = whole ? size : IVRS_HEADER_LEN + size;
	u8 *t = malloc(len ? len : 1);
	if (whole) {
		memcpy(t, data, size);
	} else {
		memset(t, 0, IVRS_HEADER_LEN);
		memcpy(t + IVRS_HEADER_LEN, data, size);
	}
	if (len >= 4)
		memcpy(t, "IVRS", 4);
	struct ivrs_info r;
	if (ivrs_parse(t, (u32)len, &r) == NULL) {
		if (r.nunits == 0 || r.nunits > IOMMU_UNITS_MAX || r.nfixed > IOMMU_FIXED_MAX)
			abort();
		for (unsigned i = 0; i < r.nunits; i++) {
			if (!r.units[i].base || (r.units[i].base & 0x3FFF))
				abort();
			if (r.units[i].type != IVHD_TYPE_10 && r.units[i].type != IVHD_TYPE_11 &&
			    r.units[i].type != IVHD_TYPE_40)
				abort();
			for (unsigned j = 0; j < i; j++)
				if (r.units[j].base == r.units[i].base ||
				    (r.units[j].devid == r.units[i].devid && r.units[j].segment == r.units[i].segment))
					abort();
		}
		for (unsigned i = 0; i < r.nfixed; i++)
			if (r.fixed[i].base >= r.fixed[i].end || ((r.fixed[i].base | r.fixed[i].end) & 0xFFF))
				abort();
	}
	free(t);
	return 0;
}
