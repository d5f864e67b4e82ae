/* libFuzzer: the policy record parser (versions 1 and 2), then the storage service's binding and
 * lookups on what it accepted. */
#include "handoff/policy.h"
#include "services/storage.h"
#include "core/log.h"
#include <stdlib.h>
#include <string.h>

/* storage_bind logs a drive it denies whole; the fuzzer discards the lines. */
void log_sink_init(const struct log_config *cfg)
{
	(void)cfg;
}
void log_sink_write(const char *s, size_t n)
{
	(void)s, (void)n;
}

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
	if (pol.version != 1 && pol.version != 2)
		abort();
	storage_init(&pol);
	for (unsigned i = 0; i < pol.ndrives; i++) {
		/* The parsed form is version 2 whatever the record's version: its invariants hold. */
		const struct policy_drive *pd = &pol.drives[i];
		if (pd->block_size < 512 || pd->block_size > 4096 || (pd->block_size & (pd->block_size - 1)))
			abort();
		if ((pd->match & POLICY_MATCH_PORT) && !(pd->match & POLICY_MATCH_TRANSPORT))
			abort();
		if (pd->transport > POLICY_TRANSPORT_NVME ||
		    (pol.version == 1 && pd->transport != POLICY_TRANSPORT_IDE))
			abort();
		struct storage_id id = { .transport = pd->transport,
			.bus = pd->pci_bus,
			.devfn = pd->pci_devfn,
			.port = pd->port,
			.position = pd->position,
			.nsid = pd->nsid,
			.block_size = 512 };
		memcpy(id.serial, pd->serial, 20);
		/* The drive an entry describes is named: by that entry or an earlier one, never passed. */
		const struct storage_drive *d = storage_bind(&id);
		if (!d)
			abort();
		id.block_size = 4096;
		const struct storage_drive *big = storage_bind(&id);
		if (!big || !storage_denies_all(big) || storage_allowed(big, 0, 1))
			abort();
		id.block_size = 512;
		if (storage_denies_all(d))
			continue; /* an earlier entry with another block size names it */
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
