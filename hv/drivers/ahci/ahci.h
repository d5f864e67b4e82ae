/*
 * AHCI 1.3.1 (Serial ATA Advanced Host Controller Interface), as much of it as the
 * parapass-through driver mediates. The HBA's registers are memory mapped at ABAR (BAR5):
 * generic host control at 00h-FFh, then one 80h block per port from 100h. Offsets below are
 * from ABAR (generic) or from the port's block (Px*).
 */
#ifndef PARAPET_AHCI_H
#define PARAPET_AHCI_H

#include "core/types.h"

/* Generic host control. */
#define AHCI_CAP 0x00 /* HBA capabilities (RO) */
#define AHCI_GHC 0x04 /* global HBA control */
#define AHCI_IS 0x08  /* interrupt status, one bit per port (RWC) */
#define AHCI_PI 0x0C  /* ports implemented (HwInit) */

#define AHCI_CAP_NCS(c) (((c) >> 8) & 0x1F) /* command slots - 1 */
#define AHCI_CAP_FBSS (1u << 16)            /* FIS-based switching (port multipliers) */
#define AHCI_CAP_SPM (1u << 17)             /* port multiplier */
#define AHCI_CAP_SNCQ (1u << 30)            /* native command queuing */
#define AHCI_CAP_S64A (1u << 31)            /* 64-bit addressing */

#define AHCI_GHC_HR (1u << 0) /* HBA reset: self-clearing, within 1 s */
#define AHCI_GHC_IE (1u << 1)
#define AHCI_GHC_AE (1u << 31) /* AHCI enable */

#define AHCI_PORTS_MAX 32
#define AHCI_SLOTS 32
#define AHCI_PORT_BASE(p) (0x100u + 0x80u * (p))
#define AHCI_PORT_END AHCI_PORT_BASE(AHCI_PORTS_MAX)

/* Port registers (offset within the port's block). */
#define PX_CLB 0x00  /* command list base, 1 KiB aligned */
#define PX_CLBU 0x04 /* its upper 32 bits (CAP.S64A) */
#define PX_FB 0x08   /* received-FIS base, 256-byte aligned */
#define PX_FBU 0x0C
#define PX_IS 0x10 /* interrupt status (RWC) */
#define PX_IE 0x14 /* interrupt enable */
#define PX_CMD 0x18
#define PX_TFD 0x20 /* task file: status 7:0, error 15:8 (RO) */
#define PX_SIG 0x24
#define PX_SSTS 0x28 /* SStatus: DET 3:0 = 3 when a device is present and communicating */
#define PX_SCTL 0x2C /* SControl: DET 3:0 = 1 sends COMRESET */
#define PX_SERR 0x30
#define PX_SACT 0x34 /* SActive: the NCQ tags outstanding */
#define PX_CI 0x38   /* command issue: one bit per slot */
#define PX_FBS 0x40  /* FIS-based switching control */

#define PX_CMD_ST (1u << 0)  /* start: process the command list */
#define PX_CMD_FRE (1u << 4) /* FIS receive enable */
#define PX_CMD_FR (1u << 14) /* FIS receive running */
#define PX_CMD_CR (1u << 15) /* command list running */

#define PX_IS_DHRS (1u << 0)  /* device-to-host register FIS received */
#define PX_IS_PSS (1u << 1)   /* PIO setup FIS received */
#define PX_IS_DSS (1u << 2)   /* DMA setup FIS received */
#define PX_IS_SDBS (1u << 3)  /* set device bits FIS received (NCQ completions) */
#define PX_IS_DPS (1u << 5)   /* a PRD with the I bit was processed */
#define PX_IS_TFES (1u << 30) /* task file error */
/* The bits that report a command's progress or completion. */
#define PX_IS_PROGRESS (PX_IS_DHRS | PX_IS_PSS | PX_IS_DSS | PX_IS_SDBS | PX_IS_DPS)

#define PX_SSTS_DET_PRESENT 3
#define PX_SIG_ATA 0x00000101u
#define PX_SIG_ATAPI 0xEB140101u

/* Command header: 32 bytes, AHCI_SLOTS of them in the 1 KiB command list. */
struct ahci_cmd_header {
	u32 dw0;         /* CFL 4:0, A 5, W 6, P 7, R 8, B 9, C 10, PMP 15:12, PRDTL 31:16 */
	u32 prdbc;       /* bytes transferred, written by the HBA */
	u32 ctba, ctbau; /* command table, 128-byte aligned */
	u32 reserved[4];
} __attribute__((packed));

#define AHCI_HDR_CFL(d) ((d)&0x1F) /* command FIS length in dwords, 2-16 */
#define AHCI_HDR_A (1u << 5)       /* ATAPI: the table's ACMD holds a SCSI command */
#define AHCI_HDR_W (1u << 6)       /* write: host to device */
#define AHCI_HDR_B (1u << 9)       /* BIST FIS */
#define AHCI_HDR_PMP(d) (((d) >> 12) & 0xF)
#define AHCI_HDR_PRDTL(d) ((d) >> 16)

/* Command table: the command FIS at 00h, the ATAPI command at 40h, PRD entries from 80h. */
#define AHCI_CT_CFIS 0x00
#define AHCI_CT_ACMD 0x40
#define AHCI_CT_PRDT 0x80
#define AHCI_CFIS_BYTES 64
#define AHCI_ACMD_BYTES 16

struct ahci_prd_entry {
	u32 dba, dbau; /* data base address, word aligned */
	u32 reserved;
	u32 dbc_i; /* byte count - 1 in 21:0 (bit 0 set: even counts only), I (interrupt) bit 31 */
} __attribute__((packed));

#define AHCI_PRD_DBC_MASK 0x3FFFFFu
#define AHCI_PRD_I (1u << 31)

/* Received FIS area: 256 bytes, FIS by FIS. */
#define AHCI_RFIS_BYTES 256
#define AHCI_RFIS_D2H 0x40 /* register device-to-host FIS */

/* Register host-to-device FIS (SATA 3.x 10.3.4). */
#define FIS_TYPE_H2D 0x27
#define FIS_H2D_C 0x80 /* byte 1: a command (else a device control update, e.g. SRST) */
#define FIS_COMMAND 2
#define FIS_FEATURE 3
#define FIS_LBA0 4 /* bytes 4-6: LBA 23:0 */
#define FIS_DEVICE 7
#define FIS_LBA3 8 /* bytes 8-10: LBA 47:24 */
#define FIS_FEATURE_EXP 11
#define FIS_COUNT 12
#define FIS_COUNT_EXP 13

/* NCQ (first-party DMA) commands: the count is in the feature fields, the tag in count 7:3. */
#define ATA_CMD_READ_FPDMA 0x60
#define ATA_CMD_WRITE_FPDMA 0x61

#endif
