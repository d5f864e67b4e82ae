/*
 * The storage policy in force: parsed once at start from the record of handoff/policy_record.h
 * (a Multiboot module), kept only in hypervisor memory. Parsing is pure (no hardware), so the
 * host unit tests and the fuzzer run it on arbitrary bytes.
 */
#ifndef PARAPET_POLICY_H
#define PARAPET_POLICY_H

#include "handoff/policy_record.h"
#include "mm/memmap.h"

struct policy {
	unsigned version; /* the record's: 1 or 2 */
	unsigned nkeys, ndrives, nranges;
	unsigned flags; /* POLICY_FLAG_* from the header */
	u8 keys[POLICY_MAX_KEYS][64];
	struct policy_drive drives[POLICY_MAX_DRIVES]; /* version 2 entries, whatever the record's version */
	struct policy_range ranges[POLICY_MAX_RANGES];
};

/* Does [data, data+len) start with the record's magic? */
bool policy_is_record(const void *data, size_t len);

/*
 * Validate the record (version 1 or 2) and copy it into *out, its drive entries in the version
 * 2 form (a version 1 entry becomes transport IDE, channel as port, block size 512, fields its
 * flags do not use zeroed). Returns NULL, or a message naming the first problem (never
 * containing key bytes). *out is zeroed on failure.
 */
const char *policy_parse(const void *data, size_t len, struct policy *out);

/*
 * Where a record handed over at run time (VMMCALL HANDOFF) may lie: 0 < len <= 64 KiB, every
 * byte RAM in the guest's memory map `m`, none in Parapet's [hv_base, hv_end). Returns NULL, or
 * the problem; *bad_len then tells a bad length from a bad address.
 */
const char *policy_place_problem(const struct memmap *m, u64 hv_base, u64 hv_end, u64 gpa, u64 len, bool *bad_len);

/* IEEE 802.3 CRC-32 (as zlib's crc32()). */
u32 policy_crc32(const void *data, size_t len);

#endif
