/* Per-sector policy lookup and the XTS transform over runs of sectors with the same key. */
#include "services/storage.h"
#include "crypto/xts.h"
#include "core/string.h"
#include "core/log.h"

struct storage_drive {
	const struct policy_drive *pd; /* NULL: every sector denied */
};

_Static_assert(STORAGE_IDE == POLICY_TRANSPORT_IDE && STORAGE_AHCI == POLICY_TRANSPORT_AHCI &&
		   STORAGE_NVME == POLICY_TRANSPORT_NVME,
    "storage_transport mirrors the record's transport codes");

static const struct storage_drive denied_whole; /* a named drive whose block size does not fit */

static struct policy *pol;
static struct xts_key keys[POLICY_MAX_KEYS];
static struct storage_drive drives[POLICY_MAX_DRIVES];

void storage_init(struct policy *p)
{
	pol = p;
	for (unsigned i = 0; i < p->nkeys; i++) {
		xts_setkey(&keys[i], p->keys[i]);
		memset(p->keys[i], 0, sizeof(p->keys[i]));
		__asm__ volatile("" : : "r"(p->keys[i]) : "memory"); /* the wipe is not optimised away */
	}
	for (unsigned i = 0; i < p->ndrives; i++)
		drives[i].pd = &p->drives[i];
}

void storage_wipe(void)
{
	for (unsigned i = 0; i < POLICY_MAX_KEYS; i++)
		xts_wipe(&keys[i]);
	if (pol)
		pol->nkeys = 0;
	__asm__ volatile("" : : "r"(keys) : "memory");
}

bool storage_active(void)
{
	return pol && pol->ndrives > 0;
}

bool storage_has_keys(void)
{
	return pol && pol->nkeys > 0;
}

static bool names(const struct policy_drive *d, const struct storage_id *id)
{
	if ((d->match & POLICY_MATCH_TRANSPORT) && d->transport != id->transport)
		return false;
	if ((d->match & POLICY_MATCH_PCI) && (d->pci_bus != id->bus || d->pci_devfn != id->devfn))
		return false;
	/* The parser lets MATCH_PORT only with MATCH_TRANSPORT: the numbers mean one transport's. */
	if ((d->match & POLICY_MATCH_PORT) && (d->port != id->port || d->position != id->position))
		return false;
	if ((d->match & POLICY_MATCH_NSID) && d->nsid != id->nsid)
		return false;
	if ((d->match & POLICY_MATCH_SERIAL) && memcmp(d->serial, id->serial, sizeof(d->serial)) != 0)
		return false;
	return true;
}

const struct storage_drive *storage_bind(const struct storage_id *id)
{
	if (!pol)
		return NULL;
	for (unsigned i = 0; i < pol->ndrives; i++) {
		const struct policy_drive *d = &pol->drives[i];
		if (!names(d, id))
			continue;
		if (d->block_size != id->block_size || id->block_size != SECTOR_SIZE) {
			LOG("storage: policy drive %u names a drive of %u-byte blocks, the policy says %u%s: every "
			    "sector denied\n",
			    i, id->block_size, d->block_size,
			    id->block_size == d->block_size ? " but only 512 is supported" : "");
			return &denied_whole;
		}
		return &drives[i];
	}
	return NULL;
}

bool storage_denies_all(const struct storage_drive *d)
{
	return d && !d->pd;
}

u8 storage_action(const struct storage_drive *d, u64 lba, u64 max, u16 *key, u64 *run)
{
	const struct policy_drive *pd = d->pd;
	if (!pd) {
		*run = max;
		*key = 0;
		return POLICY_DENY;
	}
	const struct policy_range *r = &pol->ranges[pd->first_range];
	u64 next = ~0ull; /* start of the nearest range after lba */
	for (unsigned i = 0; i < pd->nranges; i++) {
		if (lba >= r[i].first_lba && lba - r[i].first_lba < r[i].count) {
			u64 left = r[i].count - (lba - r[i].first_lba);
			*run = left < max ? left : max;
			*key = r[i].key;
			return r[i].action;
		}
		if (r[i].first_lba > lba && r[i].first_lba < next)
			next = r[i].first_lba;
	}
	*run = next - lba < max ? next - lba : max;
	*key = pd->default_key;
	return pd->default_action;
}

bool storage_allowed(const struct storage_drive *d, u64 lba, u64 count)
{
	if (lba + count < lba)
		return false;
	while (count) {
		u16 key;
		u64 run;
		if (storage_action(d, lba, count, &key, &run) == POLICY_DENY)
			return false;
		lba += run;
		count -= run;
	}
	return true;
}

void storage_transform(const struct storage_drive *d, u64 lba, u8 *buf, u64 nsect, bool to_disk)
{
	while (nsect) {
		u16 key;
		u64 run;
		u8 action = storage_action(d, lba, nsect, &key, &run);
		if (action == POLICY_ENCRYPT) {
			if (to_disk)
				xts_encrypt(&keys[key], lba, buf, run);
			else
				xts_decrypt(&keys[key], lba, buf, run);
		} else if (action == POLICY_DENY) {
			memset(buf, 0, run * SECTOR_SIZE); /* unreachable after storage_allowed; fail closed */
		}
		buf += run * SECTOR_SIZE;
		lba += run;
		nsect -= run;
	}
}
