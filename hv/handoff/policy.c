/* Parsing the storage policy record: every field is checked before anything is used. */
#include "handoff/policy.h"
#include "core/string.h"

bool policy_is_record(const void *data, size_t len)
{
	return len >= 8 && memcmp(data, POLICY_MAGIC, 8) == 0;
}

static u32 crc_update(u32 crc, const u8 *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1));
	}
	return crc;
}

u32 policy_crc32(const void *data, size_t len)
{
	return ~crc_update(0xFFFFFFFFu, data, len);
}

static bool all_zero(const u8 *p, size_t n)
{
	u8 acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static const char *check_action(u8 action, u16 key, unsigned nkeys)
{
	if (action > POLICY_DENY)
		return "unknown action";
	if (action == POLICY_ENCRYPT && key >= nkeys)
		return "key index out of range";
	return NULL;
}

/* A version 1 entry, checked as version 1 always was, in the version 2 form. */
static const char *drive_from_v1(const u8 *p, struct policy_drive *d)
{
	struct policy_drive_v1 v;
	memcpy(&v, p, sizeof(v));
	if (v.match == 0 || (v.match & ~POLICY_MATCH_KNOWN_V1))
		return "drive: bad match flags";
	if ((v.match & POLICY_MATCH_PORT) && (v.channel > 1 || v.position > 1))
		return "drive: channel or position out of range";
	if (!all_zero(v.reserved, sizeof(v.reserved)))
		return "drive: reserved bytes not zero";
	memset(d, 0, sizeof(*d));
	d->match = v.match | POLICY_MATCH_TRANSPORT; /* version 1 named IDE drives only */
	d->transport = POLICY_TRANSPORT_IDE;
	if (v.match & POLICY_MATCH_PCI) {
		d->pci_bus = v.pci_bus;
		d->pci_devfn = v.pci_devfn;
	}
	if (v.match & POLICY_MATCH_PORT) {
		d->port = v.channel;
		d->position = v.position;
	}
	if (v.match & POLICY_MATCH_SERIAL)
		memcpy(d->serial, v.serial, sizeof(d->serial));
	d->default_action = v.default_action;
	d->default_key = v.default_key;
	d->first_range = v.first_range;
	d->nranges = v.nranges;
	d->block_size = 512;
	return NULL;
}

/* A version 2 entry's naming: flags, transport, port, namespace, block size, unused fields. */
static const char *check_v2(const struct policy_drive *d)
{
	if (d->match == 0)
		return "drive: no match criterion";
	if (d->match & ~POLICY_MATCH_KNOWN)
		return "drive: unknown match flags";
	if (d->transport > POLICY_TRANSPORT_NVME)
		return "drive: unknown transport";
	if (!(d->match & POLICY_MATCH_TRANSPORT) && d->transport)
		return "drive: transport set without its match flag";
	if (!(d->match & POLICY_MATCH_PCI) && (d->pci_bus || d->pci_devfn))
		return "drive: PCI address set without its match flag";
	if (d->match & POLICY_MATCH_PORT) {
		if (!(d->match & POLICY_MATCH_TRANSPORT))
			return "drive: port match without a transport match";
		if (d->transport == POLICY_TRANSPORT_NVME)
			return "drive: port match on NVMe (name a namespace)";
		if (d->transport == POLICY_TRANSPORT_IDE && d->port > 1)
			return "drive: IDE channel (port) above 1";
		if (d->transport == POLICY_TRANSPORT_IDE && d->position > 1)
			return "drive: IDE position above 1";
		if (d->transport == POLICY_TRANSPORT_AHCI && d->port > 31)
			return "drive: AHCI port above 31";
		if (d->transport == POLICY_TRANSPORT_AHCI && d->position)
			return "drive: AHCI position not 0";
	} else if (d->port || d->position) {
		return "drive: port or position set without its match flag";
	}
	if (d->match & POLICY_MATCH_NSID) {
		if (!(d->match & POLICY_MATCH_TRANSPORT) || d->transport != POLICY_TRANSPORT_NVME)
			return "drive: namespace match without transport NVMe";
		if (d->nsid == 0 || d->nsid == 0xFFFFFFFFu)
			return "drive: namespace id 0 or 0xFFFFFFFF";
	} else if (d->nsid) {
		return "drive: namespace id set without its match flag";
	}
	if (!(d->match & POLICY_MATCH_SERIAL) && !all_zero((const u8 *)d->serial, sizeof(d->serial)))
		return "drive: serial set without its match flag";
	if (d->block_size == 0)
		return "drive: block size 0";
	if (d->block_size < POLICY_BLOCK_MIN || d->block_size > POLICY_BLOCK_MAX ||
	    (d->block_size & (d->block_size - 1)))
		return "drive: block size not a power of two in 512..4096";
	if (d->reserved0 || d->reserved1 || !all_zero(d->reserved2, sizeof(d->reserved2)))
		return "drive: reserved bytes not zero";
	return NULL;
}

static const char *check_ranges(const struct policy_drive *d, const struct policy *out)
{
	if (check_action(d->default_action, d->default_key, out->nkeys))
		return "drive: bad default action or key";
	if ((u32)d->first_range + d->nranges > out->nranges)
		return "drive: ranges out of bounds";
	for (unsigned r = d->first_range; r < (u32)d->first_range + d->nranges; r++) {
		const struct policy_range *a = &out->ranges[r];
		if (a->count == 0 || a->first_lba + a->count < a->first_lba)
			return "range: empty or wrapping";
		if (a->reserved0 || a->reserved1)
			return "range: reserved fields not zero";
		if (check_action(a->action, a->key, out->nkeys))
			return "range: bad action or key";
		for (unsigned s = d->first_range; s < r; s++) {
			const struct policy_range *b = &out->ranges[s];
			if (a->first_lba < b->first_lba + b->count && b->first_lba < a->first_lba + a->count)
				return "range: overlaps another range of the same drive";
		}
	}
	return NULL;
}

static const char *parse(const u8 *p, size_t len, struct policy *out)
{
	struct policy_header h;
	if (len < sizeof(h))
		return "record shorter than its header";
	memcpy(&h, p, sizeof(h));
	if (memcmp(h.magic, POLICY_MAGIC, 8) != 0)
		return "bad magic";
	if (h.version != POLICY_VERSION && h.version != POLICY_VERSION_1)
		return "unsupported version";
	if (h.header_size != sizeof(h))
		return "bad header_size";
	if (h.flags & ~POLICY_FLAGS_KNOWN)
		return "unknown header flags";
	if (h.reserved1)
		return "reserved header fields not zero";
	if (h.nkeys > POLICY_MAX_KEYS || h.ndrives > POLICY_MAX_DRIVES || h.nranges > POLICY_MAX_RANGES)
		return "too many keys, drives or ranges";
	u64 expect = sizeof(h) + 64ull * h.nkeys + sizeof(struct policy_drive) * (u64)h.ndrives +
		     sizeof(struct policy_range) * (u64)h.nranges;
	if (h.total_size != expect)
		return "total_size does not match the counts";
	if (len < h.total_size)
		return "record truncated";
	/* The CRC covers the record with its own field (bytes 24-27) taken as zero. */
	static const u8 zero[4];
	u32 c = crc_update(0xFFFFFFFFu, p, 24);
	c = crc_update(c, zero, 4);
	c = crc_update(c, p + 28, h.total_size - 28);
	if (~c != h.crc32)
		return "crc32 mismatch (record corrupted)";

	out->version = h.version;
	out->nkeys = h.nkeys;
	out->ndrives = h.ndrives;
	out->nranges = h.nranges;
	out->flags = h.flags;
	const u8 *q = p + sizeof(h);
	memcpy(out->keys, q, 64ull * h.nkeys);
	q += 64ull * h.nkeys;
	const u8 *dq = q;
	q += sizeof(struct policy_drive) * h.ndrives;
	memcpy(out->ranges, q, sizeof(struct policy_range) * h.nranges);

	for (unsigned i = 0; i < out->nkeys; i++)
		if (memcmp(out->keys[i], out->keys[i] + 32, 32) == 0)
			return "key with equal halves (XTS forbids it)";
	for (unsigned i = 0; i < out->ndrives; i++, dq += sizeof(struct policy_drive)) {
		struct policy_drive *d = &out->drives[i];
		const char *err;
		if (h.version == POLICY_VERSION_1) {
			err = drive_from_v1(dq, d);
		} else {
			memcpy(d, dq, sizeof(*d));
			err = check_v2(d);
		}
		if (!err)
			err = check_ranges(d, out);
		if (err)
			return err;
	}
	return NULL;
}

const char *policy_parse(const void *data, size_t len, struct policy *out)
{
	memset(out, 0, sizeof(*out));
	const char *err = parse(data, len, out);
	if (err)
		memset(out, 0, sizeof(*out));
	return err;
}

const char *policy_place_problem(const struct memmap *m, u64 hv_base, u64 hv_end, u64 gpa, u64 len, bool *bad_len)
{
	*bad_len = len == 0 || len > POLICY_MAX_SIZE;
	if (*bad_len)
		return len ? "record larger than 64 KiB" : "empty record";
	if (gpa + len < gpa)
		return "record wraps around the address space";
	if (gpa < hv_end && gpa + len > hv_base)
		return "record overlaps Parapet's memory";
	if (!memmap_is_ram(m, gpa, len))
		return "record is not all in the guest's RAM";
	return NULL;
}
