/*
 * ATA/ATAPI over the parallel (IDE) interface and SFF-8038i bus-master DMA, as much of them as
 * the parapass-through driver mediates. Register offsets are from a channel's command block
 * (legacy 1F0h/170h), control block (3F6h/376h) and bus-master block (BAR4 + 0/8).
 */
#ifndef PARAPET_ATA_H
#define PARAPET_ATA_H

#include "core/types.h"

/* Command block registers. */
#define ATA_REG_DATA 0
#define ATA_REG_FEATURE 1 /* write; read: error */
#define ATA_REG_COUNT 2
#define ATA_REG_LBA_LOW 3
#define ATA_REG_LBA_MID 4
#define ATA_REG_LBA_HIGH 5
#define ATA_REG_DEVICE 6
#define ATA_REG_COMMAND 7 /* write; read: status (reading it acknowledges INTRQ) */
#define ATA_CMD_PORTS 8

/* Control block: write device control, read alternate status (no acknowledge). */
#define ATA_DEVCTL_NIEN 0x02
#define ATA_DEVCTL_SRST 0x04

#define ATA_DEV_LBA 0x40
#define ATA_DEV_DEV1 0x10 /* device 1 (slave) selected */

#define ATA_STATUS_ERR 0x01
#define ATA_STATUS_DRQ 0x08
#define ATA_STATUS_DF 0x20
#define ATA_STATUS_BSY 0x80

/* Bus-master registers (SFF-8038i), per channel. */
#define BM_REG_COMMAND 0
#define BM_REG_STATUS 2
#define BM_REG_PRDT 4 /* dword: physical address of the PRD table, bits 1:0 zero */
#define BM_PORTS 8

#define BM_CMD_START 0x01
#define BM_CMD_TO_MEMORY 0x08 /* "read/write control": 1 = the device writes memory */
#define BM_STATUS_ACTIVE 0x01
#define BM_STATUS_ERROR 0x02 /* write 1 to clear */
#define BM_STATUS_INTR 0x04  /* write 1 to clear */

/* Physical region descriptor: a buffer of byte_count bytes (0 = 64 KiB) that does not cross a
 * 64 KiB boundary; bit 31 of the second dword marks the table's last entry. The table itself
 * is dword aligned and does not cross a 64 KiB boundary either. */
struct prd {
	u32 addr;
	u32 count_eot;
} __attribute__((packed));

#define PRD_EOT 0x80000000u
#define PRD_MAX_ENTRIES (65536 / 8)

/* Command opcodes (ATA8-ACS) that the driver names. */
#define ATA_CMD_NOP 0x00 /* subcommand 0: always aborted; used to refuse */
#define ATA_CMD_RECALIBRATE 0x10
#define ATA_CMD_READ_SECTORS 0x20
#define ATA_CMD_READ_SECTORS_NR 0x21
#define ATA_CMD_READ_SECTORS_EXT 0x24
#define ATA_CMD_READ_DMA_EXT 0x25
#define ATA_CMD_READ_NATIVE_MAX_EXT 0x27
#define ATA_CMD_READ_MULTIPLE_EXT 0x29
#define ATA_CMD_READ_LOG_EXT 0x2F
#define ATA_CMD_WRITE_SECTORS 0x30
#define ATA_CMD_WRITE_SECTORS_NR 0x31
#define ATA_CMD_WRITE_SECTORS_EXT 0x34
#define ATA_CMD_WRITE_DMA_EXT 0x35
#define ATA_CMD_WRITE_MULTIPLE_EXT 0x39
#define ATA_CMD_WRITE_DMA_FUA_EXT 0x3D
#define ATA_CMD_VERIFY 0x40
#define ATA_CMD_VERIFY_NR 0x41
#define ATA_CMD_VERIFY_EXT 0x42
#define ATA_CMD_SEEK 0x70
#define ATA_CMD_DIAGNOSTIC 0x90
#define ATA_CMD_INIT_PARAMS 0x91
#define ATA_CMD_IDENTIFY_PACKET 0xA1
#define ATA_CMD_SMART 0xB0
#define ATA_CMD_READ_MULTIPLE 0xC4
#define ATA_CMD_WRITE_MULTIPLE 0xC5
#define ATA_CMD_SET_MULTIPLE 0xC6
#define ATA_CMD_READ_DMA 0xC8
#define ATA_CMD_READ_DMA_NR 0xC9
#define ATA_CMD_WRITE_DMA 0xCA
#define ATA_CMD_WRITE_DMA_NR 0xCB
#define ATA_CMD_WRITE_MULTIPLE_FUA_EXT 0xCE
#define ATA_CMD_STANDBY_IMMEDIATE 0xE0
#define ATA_CMD_IDLE_IMMEDIATE 0xE1
#define ATA_CMD_STANDBY 0xE2
#define ATA_CMD_IDLE 0xE3
#define ATA_CMD_CHECK_POWER_MODE 0xE5
#define ATA_CMD_SLEEP 0xE6
#define ATA_CMD_FLUSH_CACHE 0xE7
#define ATA_CMD_FLUSH_CACHE_EXT 0xEA
#define ATA_CMD_IDENTIFY 0xEC
#define ATA_CMD_SET_FEATURES 0xEF
#define ATA_CMD_READ_NATIVE_MAX 0xF8

/* SMART subcommands (feature register) that only read the drive's own records. */
#define SMART_READ_DATA 0xD0
#define SMART_READ_THRESHOLDS 0xD1
#define SMART_AUTOSAVE 0xD2
#define SMART_READ_LOG 0xD5
#define SMART_ENABLE 0xD8
#define SMART_DISABLE 0xD9
#define SMART_RETURN_STATUS 0xDA

#endif
