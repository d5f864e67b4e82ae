/*
 * The storage policy record, version 1: how keys and per-drive sector policy reach Parapet.
 * Built by the TypeScript CLI (`parapet policy`), later by the preboot guest; delivered as a
 * Multiboot module and recognised by its magic, not by its position. docs/policy.md
 * is the specification; this header is its C mirror. All integers are little-endian.
 *
 *   header   32 bytes
 *   keys     nkeys   x 64 bytes  (XTS-AES-256: bytes 0-31 data key, 32-63 tweak key)
 *   drives   ndrives x 48 bytes
 *   ranges   nranges x 24 bytes
 *
 * total_size is exactly 32 + 64*nkeys + 48*ndrives + 24*nranges. crc32 (IEEE 802.3,
 * reflected, as zlib) covers the whole record with the crc32 field taken as zero.
 */
#ifndef PARAPET_POLICY_RECORD_H
#define PARAPET_POLICY_RECORD_H

#include "core/types.h"

#define POLICY_MAGIC "PARAPOL1" /* 8 bytes, no terminator */
#define POLICY_VERSION 1
#define POLICY_MAX_SIZE (64 * 1024)
#define POLICY_MAX_KEYS 16
#define POLICY_MAX_DRIVES 16
#define POLICY_MAX_RANGES 256

/*
 * policy_header.flags. ALLOW_NO_IOMMU: the record's keys may be used on a machine without a
 * usable IOMMU, where any bus master can read them (and every decrypted sector) from RAM.
 * Without it a record that carries keys is refused on such a machine (handoff/module.c).
 * Records written before flags existed hold 0 here, so they stay valid at version 1.
 */
#define POLICY_FLAG_ALLOW_NO_IOMMU 0x0001
#define POLICY_FLAGS_KNOWN POLICY_FLAG_ALLOW_NO_IOMMU

struct policy_header {
	char magic[8];
	u16 version;
	u16 header_size; /* 32 */
	u32 total_size;
	u16 nkeys, ndrives, nranges;
	u16 flags; /* POLICY_FLAG_*; every other bit 0 */
	u32 crc32;
	u32 reserved1; /* 0 */
} __attribute__((packed));

/* What happens to a sector. */
enum policy_action {
	POLICY_PLAIN = 0,   /* passes unchanged */
	POLICY_ENCRYPT = 1, /* XTS-AES-256 with key `key`, tweak = absolute LBA */
	POLICY_DENY = 2,    /* the command touching it is refused with an ATA error */
};

/* Which drive an entry names; every criterion whose flag is set must match. */
#define POLICY_MATCH_PCI 0x01    /* controller at pci_bus:pci_devfn (segment 0) */
#define POLICY_MATCH_PORT 0x02   /* channel and position */
#define POLICY_MATCH_SERIAL 0x04 /* IDENTIFY serial number */

struct policy_drive {
	u8 match; /* POLICY_MATCH_* */
	u8 pci_bus, pci_devfn;
	u8 channel;               /* 0 primary, 1 secondary */
	u8 position;              /* 0 master, 1 slave */
	u8 default_action;        /* enum policy_action for sectors no range covers */
	u16 default_key;          /* key index when default_action is ENCRYPT */
	char serial[20];          /* IDENTIFY words 10-19, bytes in reading order, space padded */
	u16 first_range, nranges; /* this drive's ranges: [first_range, first_range + nranges) */
	u8 reserved[16];          /* 0 */
} __attribute__((packed));

struct policy_range {
	u64 first_lba;
	u64 count;     /* sectors, >= 1; ranges of one drive do not overlap */
	u8 action;     /* enum policy_action */
	u8 reserved0;  /* 0 */
	u16 key;       /* key index when action is ENCRYPT */
	u32 reserved1; /* 0 */
} __attribute__((packed));

_Static_assert(sizeof(struct policy_header) == 32, "policy header is 32 bytes");
_Static_assert(sizeof(struct policy_drive) == 48, "policy drive is 48 bytes");
_Static_assert(sizeof(struct policy_range) == 24, "policy range is 24 bytes");

#endif
