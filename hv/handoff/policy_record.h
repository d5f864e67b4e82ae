/*
 * The storage policy record: how keys and per-drive sector policy reach Parapet. Built by the
 * TypeScript CLI (`parapet policy`) and the preboot guest; delivered as a Multiboot module and
 * recognised by its magic, not by its position. docs/policy.md is the specification; this
 * header is its C mirror. All integers are little-endian.
 *
 *   header   32 bytes
 *   keys     nkeys   x 64 bytes  (XTS-AES-256: bytes 0-31 data key, 32-63 tweak key)
 *   drives   ndrives x 48 bytes  (struct policy_drive in version 2, policy_drive_v1 in version 1)
 *   ranges   nranges x 24 bytes
 *
 * total_size is exactly 32 + 64*nkeys + 48*ndrives + 24*nranges. crc32 (IEEE 802.3,
 * reflected, as zlib) covers the whole record with the crc32 field taken as zero.
 *
 * Version 2 (written today) names a drive on any transport (IDE, AHCI, NVMe) and states its
 * logical block size. Version 1 (still accepted) named IDE drives only; the parser turns its
 * entries into version 2 entries with transport IDE, so the storage service has one form.
 * Both versions carry the same magic: it names the record, the version its drive layout.
 */
#ifndef PARAPET_POLICY_RECORD_H
#define PARAPET_POLICY_RECORD_H

#include "core/types.h"

#define POLICY_MAGIC "PARAPOL1" /* 8 bytes, no terminator; the same for every version */
#define POLICY_VERSION 2        /* written by the tools */
#define POLICY_VERSION_1 1      /* IDE only; still accepted */
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
	u16 version;     /* 1 or 2 */
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
#define POLICY_MATCH_PCI 0x01       /* controller at pci_bus:pci_devfn (segment 0) */
#define POLICY_MATCH_PORT 0x02      /* port and position (v2: needs MATCH_TRANSPORT, IDE or AHCI) */
#define POLICY_MATCH_SERIAL 0x04    /* serial number (ATA IDENTIFY words 10-19, or NVMe's) */
#define POLICY_MATCH_TRANSPORT 0x08 /* v2: the controller's kind, `transport` */
#define POLICY_MATCH_NSID 0x10      /* v2: NVMe namespace `nsid` (needs transport NVMe) */
#define POLICY_MATCH_KNOWN_V1 (POLICY_MATCH_PCI | POLICY_MATCH_PORT | POLICY_MATCH_SERIAL)
#define POLICY_MATCH_KNOWN (POLICY_MATCH_KNOWN_V1 | POLICY_MATCH_TRANSPORT | POLICY_MATCH_NSID)

/* policy_drive.transport: the values of enum storage_transport (services/storage.h). */
#define POLICY_TRANSPORT_IDE 0
#define POLICY_TRANSPORT_AHCI 1
#define POLICY_TRANSPORT_NVME 2

#define POLICY_BLOCK_MIN 512
#define POLICY_BLOCK_MAX 4096

/*
 * A version 2 drive entry. Fields a set match flag does not use are 0. port: IDE channel 0/1,
 * AHCI port 0-31; position: IDE 0 master / 1 slave, 0 for AHCI. block_size is the drive's
 * logical block size in bytes, a power of two in 512..4096 (never 0): a drive the entry names
 * whose block size differs is denied entirely. Ranges are in 512-byte sectors.
 */
struct policy_drive {
	u8 match;                 /* 0  POLICY_MATCH_* */
	u8 transport;             /* 1  POLICY_TRANSPORT_* (with MATCH_TRANSPORT) */
	u8 pci_bus, pci_devfn;    /* 2  (with MATCH_PCI) */
	u8 port;                  /* 4  (with MATCH_PORT) */
	u8 position;              /* 5  (with MATCH_PORT) */
	u8 default_action;        /* 6  enum policy_action for sectors no range covers */
	u8 reserved0;             /* 7  0 */
	u16 default_key;          /* 8  key index when default_action is ENCRYPT */
	u16 first_range, nranges; /* 10 this drive's ranges: [first_range, first_range + nranges) */
	u16 reserved1;            /* 14 0 */
	u32 nsid;                 /* 16 NVMe namespace id (with MATCH_NSID; 1..0xFFFFFFFE) */
	u32 block_size;           /* 20 logical block size in bytes */
	char serial[20];          /* 24 bytes in reading order, space padded (with MATCH_SERIAL) */
	u8 reserved2[4];          /* 44 0 */
} __attribute__((packed));

/* A version 1 drive entry: an IDE drive; 512-byte blocks implied. */
struct policy_drive_v1 {
	u8 match; /* POLICY_MATCH_PCI, _PORT, _SERIAL */
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
	u64 first_lba; /* 512-byte sectors */
	u64 count;     /* sectors, >= 1; ranges of one drive do not overlap */
	u8 action;     /* enum policy_action */
	u8 reserved0;  /* 0 */
	u16 key;       /* key index when action is ENCRYPT */
	u32 reserved1; /* 0 */
} __attribute__((packed));

_Static_assert(sizeof(struct policy_header) == 32, "policy header is 32 bytes");
_Static_assert(sizeof(struct policy_drive) == 48, "policy drive (v2) is 48 bytes");
_Static_assert(sizeof(struct policy_drive_v1) == 48, "policy drive (v1) is 48 bytes");
_Static_assert(sizeof(struct policy_range) == 24, "policy range is 24 bytes");

#endif
