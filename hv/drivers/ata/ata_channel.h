/*
 * One IDE channel under mediation: the task-file shadow, the command in progress on a protected
 * drive, PIO sector buffering and bus-master DMA through shadow descriptors and a shadow buffer.
 * Every entry point takes the channel's lock, so two CPUs driving one channel cannot interleave.
 */
#ifndef PARAPET_ATA_CHANNEL_H
#define PARAPET_ATA_CHANNEL_H

#include "drivers/ata/ata.h"
#include "drivers/ata/ata_cmd.h"
#include "drivers/ata/ata_prd.h"
#include "services/storage.h"
#include "core/spinlock.h"

/* Shadow buffer per channel: DMA transfers up to this size run asynchronously, as the guest
 * issued them; larger ones (up to the 32 MiB a 48-bit command can ask for) are split. */
#define ATA_SHADOW_BYTES (1024 * 1024)
#define ATA_SHADOW_SECTORS (ATA_SHADOW_BYTES / SECTOR_SIZE)

struct ata_drive {
	bool present, atapi;
	char serial[20];
	const struct storage_drive *sd; /* NULL: no policy names it, passes untouched */
};

enum ata_state {
	CH_IDLE,     /* no command of a protected drive in progress: data passes */
	CH_PIO_IN,   /* protected sectors, device to guest, one sector buffered at a time */
	CH_PIO_OUT,  /* protected sectors, guest to device */
	CH_DMA_WAIT, /* protected DMA command accepted, held until the guest starts the engine */
	CH_REFUSED,  /* the last command was refused (the device aborted a NOP in its place) */
};

struct ata_channel {
	struct spinlock lock;
	u8 index;         /* 0 primary, 1 secondary */
	u16 cmd, ctl, bm; /* port bases; bm is 0 without a bus-master block */
	struct ata_drive drive[2];
	struct ata_taskfile tf;
	u8 devctl;

	u8 state; /* enum ata_state */
	u8 op, pos;
	bool lba48;
	const struct storage_drive *sd; /* the command's drive */
	u64 lba;                        /* PIO: next sector; DMA: first sector */
	u32 left;                       /* PIO: sectors left; DMA: sectors of the command */
	u16 off;                        /* PIO: bytes of `sector` consumed/filled */
	bool loaded;
	u8 sector[SECTOR_SIZE];

	u8 bm_cmd;       /* the guest's view of the bus-master command register */
	u32 prdt;        /* the guest's PRD table address: never given to the device */
	u8 bm_virt;      /* status bits Parapet reports for a refused transfer */
	bool bm_pending; /* the guest started the engine before its command */
	bool armed;      /* the device is transferring */
	bool to_mem;
	u32 done, chunk;        /* sectors finished, sectors in the running chunk */
	struct prd_list *guest; /* the validated copy of the guest's table */
	struct prd *sh_prdt;    /* what the device really uses */
	u64 sh_prdt_pa;
	u8 *sh_buf;
	u64 sh_buf_pa;

	u64 refused; /* for the log's rate limit */
};

void ata_channel_alloc(struct ata_channel *ch);
void ata_probe(struct ata_channel *ch, unsigned pos);

/* Software reset of both devices on the channel (SRST, ATA8-ACS "device control"), leaving
 * their interrupt masked as a polling BIOS has it; waits (bounded) for BSY to clear. */
void ata_channel_reset(struct ata_channel *ch);

/* I/O hooks (ctx is the channel). */
u32 ata_cmd_io(void *ctx, u16 port, unsigned size, bool in, u32 val);
unsigned ata_data_str(void *ctx, u16 port, unsigned size, bool in, u8 *buf, unsigned count);
u32 ata_ctl_io(void *ctx, u16 port, unsigned size, bool in, u32 val);
/* Bus-master block of both channels (ctx is the array of two channels). */
u32 ata_bm_io(void *ctx, u16 port, unsigned size, bool in, u32 val);

#endif
