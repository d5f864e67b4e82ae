/*
 * An AHCI HBA under mediation: every port's command list and received-FIS area are Parapet's
 * (the guest's PxCLB/PxFB are kept as the guest's view and never reach the device), and the
 * registers through which the guest issues commands and learns of their completion (PxCI,
 * PxSACT, PxIS, IS) are virtual:
 *   - a write to PxCI issues each newly set slot: the slot is fetched and checked (ahci_cmd.h)
 *     and written to the shadow list, direct (checked PRDs to guest RAM) or, for a protected
 *     drive's sectors, through a shadow buffer, encrypted before the device sees it; a refused
 *     command becomes a NOP, which the device aborts (task-file error), as the ATA driver does;
 *   - a read of PxCI, PxSACT, PxIS or IS first reaps: slots the device finished are completed
 *     for the guest (sectors read decrypted into its buffers, its PRDBC and received FIS
 *     written), and a transfer larger than a shadow buffer is issued again, chunk by chunk,
 *     with its intermediate completions hidden;
 *   - stopping a port (PxCMD.ST), an HBA reset (GHC.HR) forget every slot in flight.
 * The device is reached through `hw` so that the host unit tests drive a model of it.
 * Each port has a lock; generic registers take the ports' locks in order.
 */
#ifndef PARAPET_AHCI_PORT_H
#define PARAPET_AHCI_PORT_H

#include "drivers/ahci/ahci_cmd.h"
#include "core/spinlock.h"

/* A protected drive's sectors move through a shadow buffer of this size per slot. */
#define AHCI_CHUNK_BYTES (64 * 1024)
#define AHCI_CHUNK_SECTORS (AHCI_CHUNK_BYTES / SECTOR_SIZE)

/* Hypervisor memory one port needs: list + FIS page, a table page per slot, and (protected
 * drives only) a chunk per slot. Physical addresses, device-visible. */
#define AHCI_PORT_TABLE_BYTES (PAGE_SIZE * (1 + AHCI_SLOTS))
#define AHCI_PORT_BOUNCE_BYTES ((u64)AHCI_CHUNK_BYTES * AHCI_SLOTS)

struct ahci_hw {
	u32 (*rd)(void *ctx, u32 off);
	void (*wr)(void *ctx, u32 off, u32 val);
	void *ctx;
};

struct ahci_slot {
	u8 kind;      /* enum ahci_kind of the command in the slot */
	bool refused; /* the device runs a NOP in its place */
	u64 hdr;      /* guest-physical address of the guest's header (PRDBC) */
	u32 done;     /* sectors finished (AHCI_SECTORS) */
	u32 chunk;    /* sectors in the chunk the device runs */
	struct ahci_cmd cmd;
};

struct ahci_port {
	struct spinlock lock;
	struct ahci_hba *hba;
	u8 index;
	bool implemented;
	const struct storage_drive *sd; /* NULL: no policy names the drive, data passes */

	u64 clb, fb;  /* the guest's view of PxCLB/PxFB */
	u32 ci, sact; /* the guest's view: issued and not yet completed for it */
	u32 is;       /* the guest's view of PxIS */
	u32 ie;       /* PxIE as last written */
	u32 active;   /* slots the device has (a chunk) of */

	u8 *list; /* 1 KiB command list, then the 256-byte received-FIS area */
	u64 list_pa;
	u8 *tables; /* AHCI_SLOTS command tables of PAGE_SIZE */
	u64 tables_pa;
	u8 *bounce; /* AHCI_SLOTS chunks, protected drives only */
	u64 bounce_pa;
	struct ahci_slot *slot; /* AHCI_SLOTS */

	u64 refusals; /* for the log's rate limit */
};

struct ahci_hba {
	struct ahci_hw hw;
	u32 cap, pi;
	struct ahci_port port[AHCI_PORTS_MAX];
};

#define AHCI_LIST_FIS 1024 /* the received-FIS area's offset in the list page */

/*
 * Put port p of hba under mediation before the guest runs: the guest's CLB/FB become its view,
 * the device is given the shadow list (memory at tables/tables_pa of AHCI_PORT_TABLE_BYTES;
 * slot state of AHCI_SLOTS entries, which may be set later, before the guest runs; for a
 * protected drive, bounce of AHCI_PORT_BOUNCE_BYTES).
 * The port's ST/FRE are put back as they were. False when the port would not stop. The caller
 * sets bounce/bounce_pa for a protected drive.
 */
bool ahci_port_take(struct ahci_hba *hba, unsigned p, u8 *mem, u64 mem_pa, struct ahci_slot *slots);

/* Give the device the guest's own CLB/FB back (a controller Parapet declines after probing). */
void ahci_port_release(struct ahci_port *port);

/* Run IDENTIFY DEVICE on port p with Parapet's own list (before the guest runs, the port's
 * drive an ATA disk): 512 bytes to physical buf_pa. False on error or timeout. */
bool ahci_port_identify(struct ahci_port *port, u64 buf_pa);

/* Wait (about 1-4 s at most) until none of `bits` is set in the register at off. */
bool ahci_wait(const struct ahci_hw *hw, u32 off, u32 bits);

/* Before the two-step preboot guest runs: save how firmware left each chipset AHCI's ports, for
 * the handoff's reset (ahci_pci.c). */
void ahci_fw_save(void);

/* Take (or let go of) every port's lock, in order: nothing reaps or issues meanwhile. */
void ahci_lock_ports(struct ahci_hba *hba, bool lock);

/* A guest access to the HBA's registers at offset off (size 1, 2, 4; 8 is two dwords). A read
 * sets *val. False: refused (the read returns all ones, the write is dropped). */
bool ahci_access(struct ahci_hba *hba, u32 off, unsigned size, bool write, u64 *val);

#endif
