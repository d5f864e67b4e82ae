/*
 * One AHCI command slot as the guest issued it: read once from guest memory (header, command
 * FIS, ATAPI command, PRD table) into hypervisor memory and checked there. The device is only
 * ever given what these copies say, so the guest rewriting its tables after the issue, from
 * another CPU, changes nothing. Pure functions over guest memory (vmm/gmem.h): the unit tests
 * and the fuzzer call them.
 */
#ifndef PARAPET_AHCI_CMD_H
#define PARAPET_AHCI_CMD_H

#include "drivers/ahci/ahci.h"
#include "services/storage.h"
#include "vmm/gmem.h"

/* PRD entries a shadow command table holds: 80h + 248 x 16 bytes = one 4 KiB page. A command
 * with more is refused (Linux uses at most 168, SeaBIOS 1). */
#define AHCI_PRD_MAX 248

struct ahci_buf {
	u64 addr;
	u32 len;  /* bytes, even */
	bool irq; /* the guest's I bit */
};

/* What the command is, once checked. */
enum ahci_kind {
	AHCI_DIRECT,  /* passes with its checked PRDs: the device moves data to or from guest RAM */
	AHCI_CONTROL, /* a device control FIS (software reset), no data */
	AHCI_SECTORS, /* sector data of a protected drive: moved through Parapet's shadow buffers */
};

struct ahci_cmd {
	u32 dw0; /* the guest's header DW0 */
	u8 cfis[AHCI_CFIS_BYTES];
	u8 acmd[AHCI_ACMD_BYTES];
	unsigned nbuf;
	u64 total;                        /* bytes the PRDs describe */
	struct gmem_sg buf[AHCI_PRD_MAX]; /* flags: the guest's I bit (AHCI_PRD_I) */

	u8 kind;    /* enum ahci_kind */
	bool write; /* host to device */
	bool ncq;   /* READ/WRITE FPDMA QUEUED */
	bool lba48;
	u64 lba;
	u32 count; /* sectors */
};

/*
 * Copy slot `slot` of the command list at guest-physical clb into *c and check its form: the
 * header, table and every PRD buffer wholly in guest RAM (never Parapet's memory or MMIO),
 * table 128-byte aligned, FIS length 2-16 dwords, at most AHCI_PRD_MAX entries, buffers word
 * aligned with even lengths. Returns NULL, or what is wrong.
 */
const char *ahci_cmd_fetch(u64 clb, unsigned slot, struct ahci_cmd *c);

/*
 * Decide what the fetched command may do on a drive the policy names (sd), or on one it does not
 * (sd NULL: any command passes with checked PRDs). For a protected drive: a Register H2D FIS,
 * no port multiplier, no BIST, no ATAPI; the opcode on the allow-list (drivers/ata/ata_cmd.h,
 * plus READ/WRITE FPDMA QUEUED); sector commands in LBA mode, every sector allowed by the
 * policy, PRDs covering the transfer, the header's direction that of the opcode; NCQ exactly
 * when the guest set the slot's SActive bit (sact). Sets kind and the range. Returns NULL, or
 * why the command is refused.
 */
const char *ahci_cmd_check(struct ahci_cmd *c, const struct storage_drive *sd, bool sact);

/* Rewrite the command FIS's LBA and count for sectors [lba, lba + count) of c's command
 * (count <= 256 for a 28-bit command, <= 65536 otherwise). */
void ahci_cmd_set_range(const struct ahci_cmd *c, u8 *cfis, u64 lba, u32 count);

/* Copy len bytes between buf and c's guest buffers from byte offset off of the list. False
 * (copying nothing more) when a buffer is no longer the guest's. */
static inline bool ahci_cmd_copy(const struct ahci_cmd *c, u64 off, u8 *buf, u64 len, bool to_guest)
{
	return gmem_sg_copy(c->buf, c->nbuf, off, buf, len, to_guest, gmem_map_dma);
}

#endif
