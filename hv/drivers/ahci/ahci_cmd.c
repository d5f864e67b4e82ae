/* Fetching and checking one AHCI command slot: see ahci_cmd.h. */
#include "drivers/ahci/ahci_cmd.h"
#include "drivers/ata/ata.h"
#include "drivers/ata/ata_cmd.h"
#include "vmm/gmem.h"
#include "core/string.h"

const char *ahci_cmd_fetch(u64 clb, unsigned slot, struct ahci_cmd *c)
{
	c->nbuf = 0;
	c->total = 0;
	const struct ahci_cmd_header *gh = gmem_map_dma(clb + slot * sizeof(*gh), sizeof(*gh));
	if (!gh)
		return "command header not in guest RAM";
	struct ahci_cmd_header h;
	memcpy(&h, gh, sizeof(h)); /* one read: the guest may be rewriting it */
	c->dw0 = h.dw0;
	u64 ctba = (u64)h.ctbau << 32 | h.ctba;
	unsigned cfl = AHCI_HDR_CFL(h.dw0), prdtl = AHCI_HDR_PRDTL(h.dw0);
	if (ctba & 0x7F)
		return "command table not 128-byte aligned";
	if (cfl < 2 || cfl > 16)
		return "command FIS length not 2-16 dwords";
	if (prdtl > AHCI_PRD_MAX)
		return "more PRD entries than Parapet shadows";
	const u8 *t = gmem_map_dma(ctba, AHCI_CT_PRDT + (u64)prdtl * sizeof(struct ahci_prd_entry));
	if (!t)
		return "command table not in guest RAM";
	memcpy(c->cfis, t + AHCI_CT_CFIS, AHCI_CFIS_BYTES);
	memcpy(c->acmd, t + AHCI_CT_ACMD, AHCI_ACMD_BYTES);
	for (unsigned i = 0; i < prdtl; i++) {
		struct ahci_prd_entry e;
		memcpy(&e, t + AHCI_CT_PRDT + i * sizeof(e), sizeof(e));
		u64 addr = (u64)e.dbau << 32 | e.dba;
		u32 len = (e.dbc_i & AHCI_PRD_DBC_MASK) + 1;
		if ((addr & 1) || (len & 1))
			return "PRD buffer not word aligned or of odd length";
		if (!gmem_map_dma(addr, len))
			return "PRD buffer not in guest RAM";
		c->buf[i] = (struct gmem_sg){ addr, len, e.dbc_i & AHCI_PRD_I };
		c->total += len;
	}
	c->nbuf = prdtl;
	return NULL;
}

static u64 fis_lba(const u8 *f, bool lba48)
{
	u64 lba = (u64)f[FIS_LBA0] | (u64)f[FIS_LBA0 + 1] << 8 | (u64)f[FIS_LBA0 + 2] << 16;
	if (lba48)
		return lba | (u64)f[FIS_LBA3] << 24 | (u64)f[FIS_LBA3 + 1] << 32 | (u64)f[FIS_LBA3 + 2] << 40;
	return lba | (u64)(f[FIS_DEVICE] & 0x0F) << 24;
}

const char *ahci_cmd_check(struct ahci_cmd *c, const struct storage_drive *sd, bool sact)
{
	const u8 *f = c->cfis;
	c->kind = AHCI_DIRECT;
	c->write = (c->dw0 & AHCI_HDR_W) != 0;
	c->ncq = sact;
	if (!sd)
		return NULL;
	if (c->dw0 & AHCI_HDR_B)
		return "BIST FIS";
	if (AHCI_HDR_PMP(c->dw0))
		return "port multiplier port";
	if (f[0] != FIS_TYPE_H2D || AHCI_HDR_CFL(c->dw0) < 5)
		return "not a register host-to-device FIS";
	if (c->dw0 & AHCI_HDR_A)
		return "ATAPI command on an ATA disk";
	if (!(f[1] & FIS_H2D_C)) {
		/* Device control (SRST set or cleared): no command, no data. */
		if (c->nbuf || c->write || sact)
			return "device control FIS with data";
		c->kind = AHCI_CONTROL;
		return NULL;
	}
	u8 op = f[FIS_COMMAND];
	bool ncq = op == ATA_CMD_READ_FPDMA || op == ATA_CMD_WRITE_FPDMA;
	if (ncq != sact)
		return ncq ? "NCQ command without its SActive bit" : "SActive bit set for a non-NCQ command";
	u8 kind;
	if (ncq) {
		kind = op == ATA_CMD_WRITE_FPDMA ? ATA_DMA_OUT : ATA_DMA_IN;
		c->lba48 = true;
		u32 n = (u32)f[FIS_FEATURE_EXP] << 8 | f[FIS_FEATURE];
		c->count = n ? n : 65536;
	} else {
		struct ata_cmd_info info = ata_classify(op, f[FIS_FEATURE]);
		kind = info.kind;
		c->lba48 = info.lba48;
		u32 n = c->lba48 ? (u32)f[FIS_COUNT_EXP] << 8 | f[FIS_COUNT] : f[FIS_COUNT];
		c->count = n ? n : c->lba48 ? 65536 : 256;
	}
	switch (kind) {
	case ATA_REFUSE:
		return "command not on the allow-list";
	case ATA_NONDATA:
		if (c->nbuf || c->write)
			return "data for a command without a data phase";
		return NULL;
	case ATA_PIO_IN_INFO:
		if (c->write)
			return "header direction is write, the command reads";
		return NULL; /* IDENTIFY, logs, SMART data: to guest RAM, not sectors */
	}
	bool out = kind == ATA_PIO_OUT || kind == ATA_DMA_OUT;
	if (out != c->write)
		return out ? "header direction is read, the command writes"
			   : "header direction is write, the command reads";
	if (!ncq && !(f[FIS_DEVICE] & ATA_DEV_LBA))
		return "CHS addressing";
	c->lba = fis_lba(f, c->lba48);
	if (c->total < (u64)c->count * SECTOR_SIZE)
		return "PRDs describe fewer bytes than the command moves";
	if (!storage_allowed(sd, c->lba, c->count))
		return "sectors the policy denies";
	c->kind = AHCI_SECTORS;
	return NULL;
}

void ahci_cmd_set_range(const struct ahci_cmd *c, u8 *f, u64 lba, u32 count)
{
	f[FIS_LBA0] = (u8)lba;
	f[FIS_LBA0 + 1] = (u8)(lba >> 8);
	f[FIS_LBA0 + 2] = (u8)(lba >> 16);
	if (c->lba48) {
		f[FIS_LBA3] = (u8)(lba >> 24);
		f[FIS_LBA3 + 1] = (u8)(lba >> 32);
		f[FIS_LBA3 + 2] = (u8)(lba >> 40);
	} else {
		f[FIS_DEVICE] = (u8)((f[FIS_DEVICE] & 0xF0) | ((lba >> 24) & 0x0F));
	}
	u8 *n = c->ncq ? &f[FIS_FEATURE] : &f[FIS_COUNT];
	u8 *n_exp = c->ncq ? &f[FIS_FEATURE_EXP] : &f[FIS_COUNT_EXP];
	n[0] = (u8)count; /* 256 and 65536 are written as 0 */
	if (c->lba48)
		*n_exp = (u8)(count >> 8);
}
