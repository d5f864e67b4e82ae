/*
 * The IDE controller as a PCI function (class 01h, subclass 01h): which ports each channel
 * decodes (legacy, or native from BAR0-3; bus master from BAR4), the drives behind it, and
 * keeping the hooks on those ports when the guest reprograms the function. The BARs are followed
 * by io/pci.c (bar_moved, with the function's I/O decoding off while a move lands); what is
 * IDE's own stays here: the programming interface switching a channel between its legacy ports
 * and its BARs, with I/O decoding held off while that write lands (pci_hold_decoding).
 */
#include "iommu/iommu.h"
#include "drivers/ata/ata_channel.h"
#include "io/pci.h"
#include "vmm/io.h"
#include "core/log.h"
#include "core/x86.h"

#define ATA_CONTROLLERS_MAX 4
#define PCI_PROGIF 0x09
#define PROGIF_NATIVE(c) ((c) ? 0x04 : 0x01)

struct ata_ctrl {
	struct pci_dev *pci;
	struct ata_channel ch[2];
	struct pci_region cmd[2], ctl[2], bm; /* the hooks, wherever the device decodes */
	u8 progif;                            /* the programming interface the hooks follow */
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

/* Where channel c's command and control blocks decode: the legacy ports (always), or BAR 2c and
 * 2c+1 (native; the control register is the block's third port). */
static void channel_window(const struct pci_dev *d, u8 progif, unsigned c, bool ctl, struct pci_window *w)
{
	if (progif & PROGIF_NATIVE(c))
		pci_bar_window(d, 2 * c + ctl, w);
	else if (ctl)
		*w = (struct pci_window){ true, true, c ? 0x374 : 0x3F4, 4 };
	else
		*w = (struct pci_window){ true, true, c ? 0x170 : 0x1F0, ATA_CMD_PORTS };
}

/* Place one of channel i's blocks at w (ch->lock held); the channel's port base follows. */
static bool place_block(struct ata_ctrl *c, unsigned i, bool ctl, const struct pci_window *w)
{
	struct pci_region *r = ctl ? &c->ctl[i] : &c->cmd[i];
	if (!pci_region_place(r, w))
		return false;
	if (r->placed)
		*(ctl ? &c->ch[i].ctl : &c->ch[i].cmd) = (u16)r->base;
	return true;
}

/* Channel i's blocks as progif says (ch->lock held); both or, on failure, neither moved. */
static bool place_channel(struct ata_ctrl *c, unsigned i, u8 progif, u8 was)
{
	const struct pci_dev *d = c->pci;
	struct pci_window cmd, ctl, old;
	channel_window(d, progif, i, false, &cmd);
	channel_window(d, progif, i, true, &ctl);
	if (!place_block(c, i, false, &cmd))
		return false;
	if (place_block(c, i, true, &ctl))
		return true;
	channel_window(d, was, i, false, &old);
	place_block(c, i, false, &old); /* back where it was: its ports are still free */
	return false;
}

/* The bus-master block at w (BAR4); both channels' registers follow. */
static bool place_bm(struct ata_ctrl *c, const struct pci_window *w)
{
	spin_lock(&c->ch[0].lock);
	spin_lock(&c->ch[1].lock);
	bool ok = pci_region_place(&c->bm, w);
	if (ok && c->bm.placed)
		for (unsigned i = 0; i < 2; i++)
			c->ch[i].bm = (u16)(c->bm.base + BM_PORTS * i);
	spin_unlock(&c->ch[1].lock);
	spin_unlock(&c->ch[0].lock);
	return ok;
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
	u16 bm_base = bm_port(d);
	bool protect = false;
	for (unsigned i = 0; i < 2; i++) {
		struct ata_channel *ch = &c->ch[i];
		ch->index = (u8)i;
		channel_ports(d, progif, i, &ch->cmd, &ch->ctl);
		ch->bm = bm_base ? (u16)(bm_base + BM_PORTS * i) : 0;
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
		c->cmd[i] = (struct pci_region){ .io = true,
			.len = ATA_CMD_PORTS,
			.port = ata_cmd_io,
			.port_str = ata_data_str,
			.ctx = ch };
		c->ctl[i] = (struct pci_region){ .io = true, .offset = 2, .len = 1, .port = ata_ctl_io, .ctx = ch };
		if (!place_channel(c, i, progif, progif))
			LOG("ata: %02x:%02x.%u ch%u: cannot hook its ports\n", d->bus, d->devfn >> 3, d->devfn & 7, i);
	}
	c->bm = (struct pci_region){ .io = true, .len = 2 * BM_PORTS, .port = ata_bm_io, .ctx = c->ch };
	struct pci_window bm;
	pci_bar_window(d, 4, &bm);
	if (!place_bm(c, &bm))
		LOG("ata: %02x:%02x.%u: cannot hook the bus-master block\n", d->bus, d->devfn >> 3, d->devfn & 7);
	c->progif = progif;
	d->priv = c;
	nctrls++;
	LOG("ata: %02x:%02x.%u mediated: ports %x/%x, %x/%x, bus master %x; %u KiB shadow per channel\n", d->bus,
	    d->devfn >> 3, d->devfn & 7, c->ch[0].cmd, c->ch[0].ctl, c->ch[1].cmd, c->ch[1].ctl,
	    c->bm.placed ? (u16)c->bm.base : 0, ATA_SHADOW_BYTES / 1024);
}

static bool touches_progif(u16 offset, unsigned size)
{
	return offset <= PCI_PROGIF && offset + size > PCI_PROGIF;
}

/* BAR0-3 (native channels) and BAR4 (bus master), from io/pci.c: the hooks follow. */
static bool ata_bar_moved(struct pci_dev *d, unsigned bar, const struct pci_window *old, const struct pci_window *now)
{
	(void)old;
	struct ata_ctrl *c = d->priv;
	if (!c || bar > 4)
		return true;
	if (bar == 4)
		return place_bm(c, now);
	unsigned i = bar / 2;
	if (!(c->progif & PROGIF_NATIVE(i)))
		return true; /* a legacy channel decodes its fixed ports, not the BAR */
	spin_lock(&c->ch[i].lock);
	bool ok = place_block(c, i, bar & 1, now);
	spin_unlock(&c->ch[i].lock);
	return ok;
}

/* The programming interface: a channel switched between legacy and native ports moves. */
static bool ata_cfg_write(struct pci_dev *d, u16 offset, unsigned size, u32 *val)
{
	(void)val;
	if (d->priv && touches_progif(offset, size))
		pci_hold_decoding(d, PCI_COMMAND_IO);
	return true;
}

static void ata_cfg_written(struct pci_dev *d, u16 offset, unsigned size)
{
	struct ata_ctrl *c = d->priv;
	if (!c || !touches_progif(offset, size))
		return;
	u8 progif = (u8)pci_read(d, PCI_PROGIF, 1), was = c->progif;
	for (unsigned i = 0; i < 2; i++) {
		u8 bit = PROGIF_NATIVE(i);
		if ((progif ^ was) & bit) {
			spin_lock(&c->ch[i].lock);
			bool ok = place_channel(c, i, progif, was);
			spin_unlock(&c->ch[i].lock);
			if (!ok) {
				LOG("ata: guest switched channel %u onto ports in use; switched back\n", i);
				progif = (u8)((progif & ~bit) | (was & bit));
				pci_write(d, PCI_PROGIF, 1, progif);
			}
		}
	}
	c->progif = progif;
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
	.bar_moved = ata_bar_moved,
};
PCI_DRIVER(ata_driver);
