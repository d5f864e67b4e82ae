/*
 * What an ATA command does, from its opcode (and SMART's feature byte), and where it points,
 * from the task-file registers. Pure functions: the unit tests and the fuzzer call them.
 */
#ifndef PARAPET_ATA_CMD_H
#define PARAPET_ATA_CMD_H

#include "core/types.h"

enum ata_kind {
	ATA_REFUSE = 0,  /* not understood, or dangerous on a protected drive */
	ATA_NONDATA,     /* no data phase, no sectors touched: passes */
	ATA_PIO_IN_INFO, /* PIO data-in that is not sector data (IDENTIFY, logs): passes */
	ATA_PIO_IN,      /* sector data, device to host, PIO */
	ATA_PIO_OUT,     /* sector data, host to device, PIO */
	ATA_DMA_IN,      /* sector data, device to memory, bus-master DMA */
	ATA_DMA_OUT,     /* sector data, memory to device, bus-master DMA */
};

struct ata_cmd_info {
	u8 kind;    /* enum ata_kind */
	bool lba48; /* uses the 48-bit (HOB) registers */
};

struct ata_cmd_info ata_classify(u8 opcode, u8 feature);

/*
 * The task file as written by the guest. Each write to a register moves its previous value to
 * the "previous" (HOB) slot, as the ATA interface does; 48-bit commands use both.
 */
struct ata_taskfile {
	u8 feature[2], count[2], lba_low[2], lba_mid[2], lba_high[2]; /* [0] current, [1] previous */
	u8 device;
};

void ata_tf_write(struct ata_taskfile *tf, unsigned reg, u8 val);

/* The command's first LBA and sector count (0 means 256 or 65536). Returns false when the
 * command does not use LBA addressing (CHS), which the driver refuses on protected drives. */
bool ata_tf_range(const struct ata_taskfile *tf, bool lba48, u64 *lba, u32 *count);

#endif
