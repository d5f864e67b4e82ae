/*
 * The storage security service: what the policy says about each sector of a drive, and the
 * XTS-AES-256 transform (tweak = absolute 512-byte LBA, as dm-crypt aes-xts-plain64). Drivers
 * call it with whole sectors that already sit in hypervisor memory.
 */
#ifndef PARAPET_STORAGE_H
#define PARAPET_STORAGE_H

#include "handoff/policy.h"

#define SECTOR_SIZE 512u /* the unit of every LBA below; only 512-byte logical blocks are supported */

enum storage_transport { STORAGE_IDE = 0, STORAGE_AHCI = 1, STORAGE_NVME = 2 };

/* How a driver names a drive when it asks for its policy. */
struct storage_id {
	u8 transport;    /* enum storage_transport */
	u8 bus, devfn;   /* the controller's PCI address (segment 0) */
	u8 port;         /* IDE: channel 0/1; AHCI: port 0-31; NVMe: 0 */
	u8 position;     /* IDE: 0 master, 1 slave; otherwise 0 */
	u32 nsid;        /* NVMe namespace id; 0 otherwise */
	u32 block_size;  /* the drive's logical block size in bytes */
	char serial[20]; /* IDENTIFY words 10-19 (ATA), or the NVMe serial, in reading order */
};

struct storage_drive;

/* Take the policy in force (keys are expanded and the raw key bytes in *p wiped). */
void storage_init(struct policy *p);
bool storage_active(void);
/* Wipe every key schedule (before a reset or power-off: nothing is transformed after it). */
void storage_wipe(void);
bool storage_has_keys(void);

/*
 * The policy for this drive: the first entry whose criteria all match it. NULL when no entry
 * names the drive: it passes untouched. When the entry names it but its block size is not the
 * drive's, or the drive's is not 512 bytes (the only size supported), the drive is still bound,
 * with every sector denied (storage_denies_all): a drive the policy names never passes
 * unmediated. The driver must then refuse every command that reads or writes it.
 */
const struct storage_drive *storage_bind(const struct storage_id *id);

/* True for the binding of a named drive whose block size does not fit (see storage_bind). */
bool storage_denies_all(const struct storage_drive *d);

/* True when no sector of [lba, lba + count) is denied and the range does not wrap. */
bool storage_allowed(const struct storage_drive *d, u64 lba, u64 count);

/* Transform nsect sectors at buf, the first being lba: encrypt on the way to the disk
 * (to_disk), decrypt on the way from it; plaintext ranges are left as they are. */
void storage_transform(const struct storage_drive *d, u64 lba, u8 *buf, u64 nsect, bool to_disk);

/* Which action applies to lba, and for how many sectors from lba the same action and key hold
 * (at most `max`). Exposed for the unit tests. */
u8 storage_action(const struct storage_drive *d, u64 lba, u64 max, u16 *key, u64 *run);

#endif
