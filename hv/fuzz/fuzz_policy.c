/* libFuzzer: the policy record parser, then the storage service's lookups on what it accepted. */
#include "handoff/policy.h"
#include "services/storage.h"
#include <stdlib.h>
#include <string.h>

static struct policy pol;

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	u8 rec[POLICY_MAX_SIZE];
	if (size > sizeof(rec))
		return 0;
	memcpy(rec, data, size);
	/* Most inputs die at the CRC; half the time, fix it up so the checks behind it run too. */
	if (size >= 32 && (size & 1)) {
		memset(rec + 24, 0, 4);
		u32 c = policy_crc32(rec, size < 32 ? 32 : size);
		u32 total;
		memcpy(&total, rec + 12, 4);
		if (total <= size)
			c = policy_crc32(rec, total);
		memcpy(rec + 24, &c, 4);
	}
	if (policy_parse(rec, size, &pol) != NULL)
		return 0;
	storage_init(&pol);
	for (unsigned i = 0; i < pol.ndrives; i++) {
		struct storage_id id = { pol.drives[i].pci_bus, pol.drives[i].pci_devfn, pol.drives[i].channel,
			pol.drives[i].position, { 0 } };
		memcpy(id.serial, pol.drives[i].serial, 20);
		const struct storage_drive *d = storage_bind(&id);
		if (!d)
			abort();
		static const u64 probes[] = { 0, 1, 2047, 2048, 1ull << 32, (1ull << 48) - 1, ~0ull - 8 };
		for (unsigned k = 0; k < sizeof(probes) / sizeof(probes[0]); k++) {
			u16 key;
			u64 run;
			u8 a = storage_action(d, probes[k], 4096, &key, &run);
			if (a > POLICY_DENY || run < 1 || run > 4096 || (a == POLICY_ENCRYPT && key >= pol.nkeys))
				abort();
			storage_allowed(d, probes[k], 100);
		}
	}
	return 0;
}
