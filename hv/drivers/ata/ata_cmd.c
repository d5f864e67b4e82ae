/* The command table: an allow-list. Anything not named here is refused on a protected drive. */
#include "drivers/ata/ata_cmd.h"
#include "drivers/ata/ata.h"

struct ata_cmd_info ata_classify(u8 op, u8 feature)
{
	switch (op) {
	case ATA_CMD_READ_SECTORS:
	case ATA_CMD_READ_SECTORS_NR:
	case ATA_CMD_READ_MULTIPLE:
		return (struct ata_cmd_info){ ATA_PIO_IN, false };
	case ATA_CMD_READ_SECTORS_EXT:
	case ATA_CMD_READ_MULTIPLE_EXT:
		return (struct ata_cmd_info){ ATA_PIO_IN, true };
	case ATA_CMD_WRITE_SECTORS:
	case ATA_CMD_WRITE_SECTORS_NR:
	case ATA_CMD_WRITE_MULTIPLE:
		return (struct ata_cmd_info){ ATA_PIO_OUT, false };
	case ATA_CMD_WRITE_SECTORS_EXT:
	case ATA_CMD_WRITE_MULTIPLE_EXT:
	case ATA_CMD_WRITE_MULTIPLE_FUA_EXT:
		return (struct ata_cmd_info){ ATA_PIO_OUT, true };
	case ATA_CMD_READ_DMA:
	case ATA_CMD_READ_DMA_NR:
		return (struct ata_cmd_info){ ATA_DMA_IN, false };
	case ATA_CMD_READ_DMA_EXT:
		return (struct ata_cmd_info){ ATA_DMA_IN, true };
	case ATA_CMD_WRITE_DMA:
	case ATA_CMD_WRITE_DMA_NR:
		return (struct ata_cmd_info){ ATA_DMA_OUT, false };
	case ATA_CMD_WRITE_DMA_EXT:
	case ATA_CMD_WRITE_DMA_FUA_EXT:
		return (struct ata_cmd_info){ ATA_DMA_OUT, true };
	case ATA_CMD_IDENTIFY:
	case ATA_CMD_IDENTIFY_PACKET:
		return (struct ata_cmd_info){ ATA_PIO_IN_INFO, false };
	case ATA_CMD_READ_LOG_EXT:
		return (struct ata_cmd_info){ ATA_PIO_IN_INFO, true };
	case ATA_CMD_SMART:
		switch (feature) {
		case SMART_READ_DATA:
		case SMART_READ_THRESHOLDS:
		case SMART_READ_LOG:
			return (struct ata_cmd_info){ ATA_PIO_IN_INFO, false };
		case SMART_AUTOSAVE:
		case SMART_ENABLE:
		case SMART_DISABLE:
		case SMART_RETURN_STATUS:
			return (struct ata_cmd_info){ ATA_NONDATA, false };
		}
		return (struct ata_cmd_info){ ATA_REFUSE, false }; /* offline tests, log writes */
	case ATA_CMD_VERIFY:
	case ATA_CMD_VERIFY_NR:
	case ATA_CMD_RECALIBRATE:
	case ATA_CMD_SEEK:
	case ATA_CMD_DIAGNOSTIC:
	case ATA_CMD_INIT_PARAMS:
	case ATA_CMD_SET_MULTIPLE:
	case ATA_CMD_STANDBY_IMMEDIATE:
	case ATA_CMD_IDLE_IMMEDIATE:
	case ATA_CMD_STANDBY:
	case ATA_CMD_IDLE:
	case ATA_CMD_CHECK_POWER_MODE:
	case ATA_CMD_SLEEP:
	case ATA_CMD_FLUSH_CACHE:
	case ATA_CMD_SET_FEATURES:
	case ATA_CMD_READ_NATIVE_MAX:
		return (struct ata_cmd_info){ ATA_NONDATA, false };
	case ATA_CMD_VERIFY_EXT:
	case ATA_CMD_FLUSH_CACHE_EXT:
	case ATA_CMD_READ_NATIVE_MAX_EXT:
		return (struct ata_cmd_info){ ATA_NONDATA, true };
	}
	/* SECURITY *, DOWNLOAD MICROCODE, SET MAX ADDRESS (EXT), TRUSTED SEND/RECEIVE, DATA SET
	 * MANAGEMENT, vendor-specific, PACKET on a disk, and everything unknown. */
	return (struct ata_cmd_info){ ATA_REFUSE, false };
}

void ata_tf_write(struct ata_taskfile *tf, unsigned reg, u8 val)
{
	u8 *r;
	switch (reg) {
	case ATA_REG_FEATURE:
		r = tf->feature;
		break;
	case ATA_REG_COUNT:
		r = tf->count;
		break;
	case ATA_REG_LBA_LOW:
		r = tf->lba_low;
		break;
	case ATA_REG_LBA_MID:
		r = tf->lba_mid;
		break;
	case ATA_REG_LBA_HIGH:
		r = tf->lba_high;
		break;
	case ATA_REG_DEVICE:
		tf->device = val;
		return;
	default:
		return;
	}
	r[1] = r[0];
	r[0] = val;
}

bool ata_tf_range(const struct ata_taskfile *tf, bool lba48, u64 *lba, u32 *count)
{
	if (!(tf->device & ATA_DEV_LBA))
		return false;
	if (lba48) {
		*lba = (u64)tf->lba_high[1] << 40 | (u64)tf->lba_mid[1] << 32 | (u64)tf->lba_low[1] << 24 |
		       (u64)tf->lba_high[0] << 16 | (u64)tf->lba_mid[0] << 8 | tf->lba_low[0];
		u32 n = (u32)tf->count[1] << 8 | tf->count[0];
		*count = n ? n : 65536;
	} else {
		*lba = (u64)(tf->device & 0x0F) << 24 | (u64)tf->lba_high[0] << 16 | (u64)tf->lba_mid[0] << 8 |
		       tf->lba_low[0];
		*count = tf->count[0] ? tf->count[0] : 256;
	}
	return true;
}
