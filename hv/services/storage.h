/*
 * The storage security service: what the policy says about each sector of a drive, and the
 * XTS-AES-256 transform (tweak = absolute 512-byte LBA, as dm-crypt aes-xts-plain64). Drivers
 * call it with whole sectors that already sit in hypervisor memory.
 */
#ifndef PARAPET_STORAGE_H
#define PARAPET_STORAGE_H

#include "handoff/policy.h"

#define SECTOR_SIZE 512u

/* How a driver names a drive when it asks for its policy. */
struct storage_id {
	u8 bus, devfn;        /* the controller's PCI address (segment 0) */
	u8 channel, position; /* 0/1: primary/secondary, master/slave */
	char serial[20];      /* IDENTIFY words 10-19 in reading order */
};

struct storage_drive;

/* Take the policy in force (keys are expanded and the raw key bytes in *p wiped). */
void storage_init(struct policy *p);
bool storage_active(void);
/* Wipe every key schedule (before a reset or power-off: nothing is transformed after it). */
void storage_wipe(void);
bool storage_has_keys(void);

/* The policy entry naming this drive, or NULL: a drive no entry names passes untouched. */
const struct storage_drive *storage_bind(const struct storage_id *id);

/* True when no sector of [lba, lba + count) is denied and the range does not wrap. */
bool storage_allowed(const struct storage_drive *d, u64 lba, u64 count);

/* Transform nsect sectors at buf, the first being lba: encrypt on the way to the disk
 * (to_disk), decrypt on the way from it; plaintext ranges are left as they are. */
void storage_transform(const struct storage_drive *d, u64 lba, u8 *buf, u64 nsect, bool to_disk);

/* Which action applies to lba, and for how many sectors from lba the same action and key hold
 * (at most `max`). Exposed for the unit tests. */
u8 storage_action(const struct storage_drive *d, u64 lba, u64 max, u16 *key, u64 *run);

#endif
