/*
 * The IDE controller as a PCI function (class 01h, subclass 01h): which ports each channel
 * decodes (legacy, or native from BAR0-3; bus master from BAR4), the drives behind it, and
 * keeping the hooks on those ports when the guest reprograms the function. While a write that
 * can move ports lands, the function's I/O decoding is off: another CPU cannot reach it at
 * its new ports before the hooks are there (pci.c serialises a function's mediated writes).
 */
#include "iommu/iommu.h"
#include "drivers/ata/ata_channel.h"
#include "io/pci.h"
#include "vmm/io.h"
#include "core/log.h"
#include "core/x86.h"

#define ATA_CONTROLLERS_MAX 4
#define PCI_PROGIF 0x09
#define PCI_BAR0 0x10
#define PROGIF_NATIVE(c) ((c) ? 0x04 : 0x01)

struct ata_ctrl {
	struct pci_dev *pci;
	struct ata_channel ch[2];
	int h_cmd[2], h_ctl[2], h_bm;
	u16 bm_base;
	u16 frozen_cmd; /* the command register while a port move lands */
	bool frozen;
};

static struct ata_ctrl ctrls[ATA_CONTROLLERS_MAX];
static unsigned nctrls;

static void channel_ports(const struct pci_dev *d, u8 progif, unsigned c, u16 *cmd, u16 *ctl)
{
	if (!(progif & PROGIF_NATIVE(c))) {
		*cmd = c ? 0x170 : 0x1F0;
		*ctl = c ? 0x376 : 0x3F6;
	} else {
		*cmd = (u16)(d->bar[2 * c] & 0xFFFC);
		*ctl = (u16)((d->bar[2 * c + 1] & 0xFFFC) + 2);
	}
}

static u16 bm_port(const struct pci_dev *d)
{
	return (d->bar[4] & 1) ? (u16)(d->bar[4] & 0xFFF0) : 0;
}

static const char *const pos_name[2] = { "master", "slave" };

static void ata_bind(struct pci_dev *d)
{
	if (nctrls == ATA_CONTROLLERS_MAX || !storage_active()) {
		d->drv = NULL; /* no policy: nothing to mediate, not even a probe */
		return;
	}
	struct ata_ctrl *c = &ctrls[nctrls];
	u8 progif = (u8)pci_read(d, PCI_PROGIF, 1);
	c->pci = d;
	c->bm_base = bm_port(d);
	bool protect = false;
	for (unsigned i = 0; i < 2; i++) {
		struct ata_channel *ch = &c->ch[i];
		ch->index = (u8)i;
		channel_ports(d, progif, i, &ch->cmd, &ch->ctl);
		ch->bm = c->bm_base ? (u16)(c->bm_base + BM_PORTS * i) : 0;
		for (unsigned p = 0; p < 2; p++) {
			ata_probe(ch, p);
			struct ata_drive *dr = &ch->drive[p];
			if (!dr->present)
				continue;
			struct storage_id id = { .transport = STORAGE_IDE,
				.bus = d->bus,
				.devfn = d->devfn,
				.port = (u8)i,
				.position = (u8)p,
				.block_size = SECTOR_SIZE };
			for (unsigned k = 0; k < sizeof(id.serial); k++)
				id.serial[k] = dr->serial[k];
			dr->sd = dr->atapi ? NULL : storage_bind(&id);
			protect |= dr->sd != NULL;
			LOG("ata: %02x:%02x.%u ch%u %s: %s serial '%.*s', %s\n", d->bus, d->devfn >> 3, d->devfn & 7, i,
			    pos_name[p], dr->atapi ? "ATAPI" : "ATA", 20, dr->serial,
			    storage_denies_all(dr->sd)
				? "named by the policy, block size does not fit: every sector denied"
			    : dr->sd ? "protected by the policy"
				     : "passes untouched");
		}
	}
	if (!protect) {
		LOG("ata: %02x:%02x.%u: no drive named by the policy; not mediated\n", d->bus, d->devfn >> 3,
		    d->devfn & 7);
		d->drv = NULL; /* decline: its configuration accesses cost no exit either */
		return;
	}
	for (unsigned i = 0; i < 2; i++) {
		struct ata_channel *ch = &c->ch[i];
		ata_channel_alloc(ch);
		/* The controller's own DMA reaches Parapet's memory only here: the shadow table and buffer. */
		iommu_dma_allow(d->bus, d->devfn, ch->sh_prdt_pa,
		    ALIGN_UP(PRD_MAX_ENTRIES * sizeof(struct prd), PAGE_SIZE));
		iommu_dma_allow(d->bus, d->devfn, ch->sh_buf_pa, ATA_SHADOW_BYTES);
		c->h_cmd[i] = io_hook_add(ch->cmd, ATA_CMD_PORTS, ata_cmd_io, ata_data_str, ch);
		c->h_ctl[i] = io_hook_add(ch->ctl, 1, ata_ctl_io, NULL, ch);
	}
	c->h_bm = c->bm_base ? io_hook_add(c->bm_base, 2 * BM_PORTS, ata_bm_io, NULL, c->ch) : -1;
	d->priv = c;
	nctrls++;
	LOG("ata: %02x:%02x.%u mediated: ports %x/%x, %x/%x, bus master %x; %u KiB shadow per channel\n", d->bus,
	    d->devfn >> 3, d->devfn & 7, c->ch[0].cmd, c->ch[0].ctl, c->ch[1].cmd, c->ch[1].ctl, c->bm_base,
	    ATA_SHADOW_BYTES / 1024);
}

/* Move a hook with the device; if the new ports are not free, put the device back where the
 * hook is, so its registers never go unmediated. */
static bool follow(int h, u16 *cur, u16 want)
{
	if (want == *cur)
		return true;
	if (h >= 0 && !io_hook_move(h, want))
		return false;
	*cur = want;
	return true;
}

static bool moves_ports(u16 offset, unsigned size)
{
	return !(
	    offset + size <= PCI_PROGIF || offset >= PCI_BAR0 + 5 * 4 || (offset > PCI_PROGIF && offset < PCI_BAR0));
}

static bool ata_cfg_write(struct pci_dev *d, u16 offset, unsigned size, u32 *val)
{
	(void)val;
	struct ata_ctrl *c = d->priv;
	if (!c || !moves_ports(offset, size))
		return true;
	c->frozen_cmd = (u16)pci_read(d, PCI_COMMAND, 2);
	c->frozen = true;
	pci_write(d, PCI_COMMAND, 2, c->frozen_cmd & ~PCI_COMMAND_IO);
	return true;
}

static void ata_cfg_written(struct pci_dev *d, u16 offset, unsigned size)
{
	struct ata_ctrl *c = d->priv;
	if (!c || !moves_ports(offset, size))
		return;
	u8 progif = (u8)pci_read(d, PCI_PROGIF, 1);
	for (unsigned i = 0; i < 2; i++) {
		struct ata_channel *ch = &c->ch[i];
		spin_lock(&ch->lock);
		u16 cmd, ctl;
		channel_ports(d, progif, i, &cmd, &ctl);
		bool ok = follow(c->h_cmd[i], &ch->cmd, cmd) && follow(c->h_ctl[i], &ch->ctl, ctl);
		spin_unlock(&ch->lock);
		if (!ok) {
			LOG("ata: guest moved channel %u onto ports in use (%x/%x); moved back\n", i, cmd, ctl);
			pci_write(d, PCI_PROGIF, 1, progif & ~PROGIF_NATIVE(i));
			pci_write(d, PCI_BAR0 + 8 * i, 4, ch->cmd | 1);
			pci_write(d, PCI_BAR0 + 8 * i + 4, 4, (u32)(ch->ctl - 2) | 1);
		}
	}
	u16 bm = bm_port(d);
	if (bm != c->bm_base) {
		spin_lock(&c->ch[0].lock);
		spin_lock(&c->ch[1].lock);
		bool ok = bm && follow(c->h_bm, &c->bm_base, bm);
		if (ok)
			for (unsigned i = 0; i < 2; i++)
				c->ch[i].bm = (u16)(bm + BM_PORTS * i);
		spin_unlock(&c->ch[1].lock);
		spin_unlock(&c->ch[0].lock);
		if (!ok) {
			LOG("ata: guest moved the bus-master block to %x (in use or disabled); moved back to %x\n", bm,
			    c->bm_base);
			pci_write(d, PCI_BAR0 + 16, 4, (u32)c->bm_base | 1);
		}
	}
	if (c->frozen) {
		c->frozen = false;
		pci_write(d, PCI_COMMAND, 2, c->frozen_cmd); /* the hooks are in place: decode again */
		d->command = c->frozen_cmd;
	}
}

/* The controller as a BIOS expects to find it (after the preboot guest): bus mastering stopped,
 * its status bits cleared, every drive reset. Works whether or not the driver is bound. */
static void ata_reset(struct pci_dev *d)
{
	u8 progif = (u8)pci_read(d, PCI_PROGIF, 1);
	u16 bm = bm_port(d);
	for (unsigned i = 0; i < 2; i++) {
		struct ata_channel ch = { .index = (u8)i };
		channel_ports(d, progif, i, &ch.cmd, &ch.ctl);
		if (bm) {
			outb((u16)(bm + BM_PORTS * i + BM_REG_COMMAND), 0);
			outb((u16)(bm + BM_PORTS * i + BM_REG_STATUS), BM_STATUS_ERROR | BM_STATUS_INTR);
		}
		ata_channel_reset(&ch);
	}
	LOG("ata: %02x:%02x.%u reset: bus master stopped, both channels SRST\n", d->bus, d->devfn >> 3, d->devfn & 7);
}

static const struct pci_driver ata_driver = {
	.name = "ata",
	.vendor = PCI_ANY_ID,
	.device = PCI_ANY_ID,
	.class = 0x01,
	.subclass = 0x01,
	.reset = ata_reset,
	.bind = ata_bind,
	.cfg_write = ata_cfg_write,
	.cfg_written = ata_cfg_written,
};
PCI_DRIVER(ata_driver);
