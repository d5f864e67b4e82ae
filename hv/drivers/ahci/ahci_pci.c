/*
 * The AHCI HBA as a PCI function (class 01h, subclass 06h, prog-if 01h): bound when the policy
 * names a drive behind it. Its registers (ABAR, BAR5) are trapped wherever the guest places
 * them (io/pci.c reports every move); its I/O space stays off, since an index/data pair there
 * (Intel's, BAR4) reaches every register behind the trap. At bind, before the guest runs, each
 * implemented port is put on Parapet's shadow list and each ATA disk is identified (its serial
 * number names it in the policy).
 */
#include "drivers/ahci/ahci_port.h"
#include "iommu/iommu.h"
#include "io/pci.h"
#include "core/pgalloc.h"
#include "core/log.h"
#include "core/panic.h"
#include "core/x86.h"
#include "drivers/ata/ata.h"

#define AHCI_HBAS_MAX 2
#define AHCI_ABAR 5
#define AHCI_PROGIF 0x01

struct ahci_ctrl {
	struct ahci_hba hba;
	struct pci_dev *pci;
	u64 abar, len;            /* where Parapet reaches the registers; the window's length */
	struct pci_region region; /* the guest's window, trapped while memory decoding is on */
};

static struct ahci_ctrl ctrls[AHCI_HBAS_MAX];
static unsigned nctrls;

static u32 hw_rd(void *ctx, u32 off)
{
	struct ahci_ctrl *c = ctx;
	return *(volatile u32 *)phys_ptr(c->abar + off);
}

static void hw_wr(void *ctx, u32 off, u32 val)
{
	struct ahci_ctrl *c = ctx;
	*(volatile u32 *)phys_ptr(c->abar + off) = val;
}

static bool abar_access(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	(void)v;
	struct ahci_ctrl *c = ctx;
	u64 off = gpa - __atomic_load_n(&c->abar, __ATOMIC_ACQUIRE);
	if (off >= c->len) /* raced a move of the window: the guest's next access finds it */
		return false;
	return ahci_access(&c->hba, (u32)off, size, write, val);
}

static u64 alloc(u64 bytes, u8 **ptr)
{
	u64 pa = pgalloc((unsigned)(ALIGN_UP(bytes, PAGE_SIZE) / PAGE_SIZE));
	*ptr = phys_ptr(pa);
	return pa;
}

/* Put port i under Parapet's list and decide whether the policy names its drive. */
static void take_port(struct ahci_ctrl *c, unsigned i)
{
	struct pci_dev *d = c->pci;
	struct ahci_port *p = &c->hba.port[i];
	u8 *mem;
	u64 mem_pa = alloc(AHCI_PORT_TABLE_BYTES, &mem);
	/* The controller may reach the port's shadows (before it is given them). */
	iommu_dma_allow(d->bus, d->devfn, mem_pa, AHCI_PORT_TABLE_BYTES);
	if (!ahci_port_take(&c->hba, i, mem, mem_pa, NULL))
		panic("ahci: %02x:%02x.%u port %u does not stop: it cannot be mediated", d->bus, d->devfn >> 3,
		    d->devfn & 7, i);
	u32 ssts = c->hba.hw.rd(c, AHCI_PORT_BASE(i) + PX_SSTS);
	u32 sig = c->hba.hw.rd(c, AHCI_PORT_BASE(i) + PX_SIG);
	if ((ssts & 0xF) != PX_SSTS_DET_PRESENT || sig != PX_SIG_ATA) {
		LOG("ahci: %02x:%02x.%u port %u: %s (signature %08x)\n", d->bus, d->devfn >> 3, d->devfn & 7, i,
		    (ssts & 0xF) != PX_SSTS_DET_PRESENT ? "no device" : "not an ATA disk: passes with checked PRDs",
		    sig);
		return;
	}
	/* IDENTIFY's data lands in slot 1's table page, unused until the guest runs. */
	u8 *id = mem + 2 * PAGE_SIZE;
	u64 id_pa = mem_pa + 2 * PAGE_SIZE;
	struct storage_id sid = { .transport = STORAGE_AHCI,
		.bus = d->bus,
		.devfn = d->devfn,
		.port = (u8)i,
		.block_size = SECTOR_SIZE };
	bool known = ahci_port_identify(p, id_pa);
	if (known) /* words 10-19, two characters a word, high byte first */
		for (unsigned k = 0; k < 10; k++) {
			sid.serial[2 * k] = (char)id[20 + 2 * k + 1];
			sid.serial[2 * k + 1] = (char)id[20 + 2 * k];
		}
	p->sd = storage_bind(&sid);
	if (p->sd) {
		p->bounce_pa = alloc(AHCI_PORT_BOUNCE_BYTES, &p->bounce);
		iommu_dma_allow(d->bus, d->devfn, p->bounce_pa, AHCI_PORT_BOUNCE_BYTES);
	}
	LOG("ahci: %02x:%02x.%u port %u: ATA serial '%.*s'%s, %s\n", d->bus, d->devfn >> 3, d->devfn & 7, i, 20,
	    sid.serial, known ? "" : " (IDENTIFY failed)",
	    p->sd ? "protected by the policy" : "passes with checked PRDs");
}

static void ahci_bind(struct pci_dev *d)
{
	u64 abar = pci_bar_addr(d, AHCI_ABAR);
	u64 len = ALIGN_UP(d->bar_size[AHCI_ABAR], PAGE_SIZE);
	if (nctrls == AHCI_HBAS_MAX || !storage_active() || d->progif != AHCI_PROGIF) {
		d->drv = NULL;
		return;
	}
	if (!abar || pci_bar_is_io(d->bar[AHCI_ABAR]) || !(d->command & PCI_COMMAND_MEMORY) ||
	    len < AHCI_PORT_BASE(1)) {
		LOG("ahci: %02x:%02x.%u: registers not decoded at start (ABAR %lx, %lu bytes); not mediated\n", d->bus,
		    d->devfn >> 3, d->devfn & 7, abar, len);
		d->drv = NULL;
		return;
	}
	struct ahci_ctrl *c = &ctrls[nctrls];
	*c = (struct ahci_ctrl){ .hba.hw = { hw_rd, hw_wr, c }, .pci = d, .abar = abar, .len = len };
	if (!(hw_rd(c, AHCI_GHC) & AHCI_GHC_AE))
		hw_wr(c, AHCI_GHC, AHCI_GHC_AE);
	c->hba.cap = hw_rd(c, AHCI_CAP);
	c->hba.pi = hw_rd(c, AHCI_PI);
	bool protect = false;
	for (unsigned i = 0; i < AHCI_PORTS_MAX; i++)
		if ((c->hba.pi >> i & 1) && AHCI_PORT_BASE(i + 1) <= len) {
			take_port(c, i);
			protect |= c->hba.port[i].sd != NULL;
		}
	if (!protect) {
		for (unsigned i = 0; i < AHCI_PORTS_MAX; i++)
			if (c->hba.port[i].implemented)
				ahci_port_release(&c->hba.port[i]);
		iommu_dma_revoke(d->bus, d->devfn); /* the shadows it probed with are Parapet's again */
		LOG("ahci: %02x:%02x.%u: no drive named by the policy; not mediated\n", d->bus, d->devfn >> 3,
		    d->devfn & 7);
		d->drv = NULL;
		return;
	}
	for (unsigned i = 0; i < AHCI_PORTS_MAX; i++) /* slot state only for a controller kept */
		if (c->hba.port[i].implemented)
			alloc((u64)AHCI_SLOTS * sizeof(struct ahci_slot), (u8 **)&c->hba.port[i].slot);
	c->region = (struct pci_region){ .mem = abar_access, .ctx = c };
	struct pci_window w;
	pci_bar_window(d, AHCI_ABAR, &w);
	if (!pci_region_place(&c->region, &w))
		panic("ahci: %02x:%02x.%u: cannot trap its registers at %lx", d->bus, d->devfn >> 3, d->devfn & 7,
		    abar);
	pci_write(d, PCI_COMMAND, 2, d->command & ~PCI_COMMAND_IO);
	d->command &= ~PCI_COMMAND_IO;
	d->priv = c;
	nctrls++;
	LOG("ahci: %02x:%02x.%u mediated: ABAR %lx, %u slots, NCQ %s; %lu KiB shadow per protected port\n", d->bus,
	    d->devfn >> 3, d->devfn & 7, abar, AHCI_CAP_NCS(c->hba.cap) + 1,
	    (c->hba.cap & AHCI_CAP_SNCQ) ? "yes" : "no", AHCI_PORT_BOUNCE_BYTES >> 10);
}

/* ---- Firmware's own AHCI state, for the two-step handoff ----
 * The preboot guest's Linux drives the HBA with lists in its RAM, which the handoff wipes; the
 * target then boots through the BIOS's INT 13h, whose lists are the ones it set at POST. So the
 * ports' registers as firmware left them are saved before the preboot guest runs, and put back
 * after an HBA reset at the handoff (before the driver takes the ports). Chipset AHCI on bus 0. */
/* Per port: CLB, CLBU, FB, FBU, IE as firmware left them, then its ST and FRE. */
static const u8 fw_regs[] = { PX_CLB, PX_CLBU, PX_FB, PX_FBU, PX_IE, PX_CMD };
static struct {
	u8 devfn;
	u32 ghc, pi;
	u32 port[AHCI_PORTS_MAX][sizeof(fw_regs)];
} fw[AHCI_HBAS_MAX];
static unsigned nfw;

static u64 fw_abar(u8 bus, u8 devfn)
{
	if (!(pci_cfg_read(bus, devfn, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY))
		return 0;
	u32 bar = pci_cfg_read(bus, devfn, PCI_BAR0 + 4 * AHCI_ABAR, 4);
	return bar & 1 ? 0 : bar & ~0xFull;
}

void ahci_fw_save(void)
{
	for (unsigned devfn = 0; devfn < 256 && nfw < AHCI_HBAS_MAX; devfn++) {
		struct ahci_ctrl t = { .abar = fw_abar(0, (u8)devfn) };
		if (pci_cfg_read(0, (u8)devfn, PCI_CLASS_REV, 4) >> 8 != 0x010601 || !t.abar)
			continue;
		fw[nfw].devfn = (u8)devfn;
		fw[nfw].ghc = hw_rd(&t, AHCI_GHC) & (AHCI_GHC_AE | AHCI_GHC_IE);
		fw[nfw].pi = hw_rd(&t, AHCI_PI);
		for (unsigned i = 0; i < AHCI_PORTS_MAX && AHCI_PORT_BASE(i + 1) <= PAGE_SIZE; i++)
			for (unsigned r = 0; r < sizeof(fw_regs) && (fw[nfw].pi >> i & 1); r++)
				fw[nfw].port[i][r] = hw_rd(&t, AHCI_PORT_BASE(i) + fw_regs[r]);
		nfw++;
	}
}

/* At the handoff: the HBA reset (whatever the preboot guest left running stops), then the ports
 * on firmware's lists again, as it had them. */
static void ahci_reset(struct pci_dev *d)
{
	struct ahci_ctrl t = { .abar = fw_abar(d->bus, d->devfn) };
	struct ahci_hw hw = { hw_rd, hw_wr, &t };
	if (!t.abar)
		return;
	hw_wr(&t, AHCI_GHC, AHCI_GHC_HR);
	ahci_wait(&hw, AHCI_GHC, AHCI_GHC_HR);
	hw_wr(&t, AHCI_GHC, AHCI_GHC_AE);
	for (unsigned k = 0; k < nfw; k++) {
		if (d->bus != 0 || fw[k].devfn != d->devfn)
			continue;
		for (unsigned i = 0; i < AHCI_PORTS_MAX; i++) {
			const u32 *p = fw[k].port[i], b = AHCI_PORT_BASE(i), cmd = p[5] & (PX_CMD_ST | PX_CMD_FRE);
			if (!p[0])
				continue;
			hw_wr(&t, b + PX_SERR, ~0u);
			hw_wr(&t, b + PX_IS, ~0u);
			for (unsigned r = 0; r < 5; r++) /* CLB, CLBU, FB, FBU, IE */
				hw_wr(&t, b + fw_regs[r], p[r]);
			hw_wr(&t, b + PX_CMD, cmd & PX_CMD_FRE);
			ahci_wait(&hw, b + PX_TFD, ATA_STATUS_BSY | ATA_STATUS_DRQ);
			hw_wr(&t, b + PX_CMD, cmd);
		}
		hw_wr(&t, AHCI_GHC, fw[k].ghc | AHCI_GHC_AE);
	}
	hw_wr(&t, AHCI_IS, ~0u);
	LOG("ahci: %02x:%02x.%u reset: HBA reset, ports back on firmware's lists\n", d->bus, d->devfn >> 3,
	    d->devfn & 7);
}

/* The command register or a BAR: a write there can move or switch off the registers. */
static bool moves(u16 offset, unsigned size)
{
	return (offset < PCI_COMMAND + 2 && offset + size > PCI_COMMAND) ||
	       (offset < PCI_BAR0 + 24 && offset + size > PCI_BAR0);
}

/* While such a write lands every port is held still: no reap reads a window in motion. */
static bool ahci_cfg_write(struct pci_dev *d, u16 offset, unsigned size, u32 *val)
{
	(void)val;
	if (d->priv && moves(offset, size))
		ahci_lock_ports(&((struct ahci_ctrl *)d->priv)->hba, true);
	return true;
}

static void ahci_cfg_written(struct pci_dev *d, u16 offset, unsigned size)
{
	if (d->priv && moves(offset, size))
		ahci_lock_ports(&((struct ahci_ctrl *)d->priv)->hba, false);
}

static bool ahci_bar_moved(struct pci_dev *d, unsigned bar, const struct pci_window *old, const struct pci_window *now)
{
	(void)old;
	struct ahci_ctrl *c = d->priv;
	if (!c)
		return true;
	if (now->io) /* the I/O space never decodes: an index/data pair would reach the registers */
		return !now->on;
	if (bar != AHCI_ABAR)
		return true;
	if (now->on && now->len < c->len)
		return false;
	if (!pci_region_place(&c->region, now)) {
		LOG("ahci: %02x:%02x.%u: registers cannot be trapped at %lx; move refused\n", d->bus, d->devfn >> 3,
		    d->devfn & 7, now->base);
		return false;
	}
	if (now->on)
		__atomic_store_n(&c->abar, now->base, __ATOMIC_RELEASE);
	return true;
}

static const struct pci_driver ahci_driver = {
	.name = "ahci",
	.vendor = PCI_ANY_ID,
	.device = PCI_ANY_ID,
	.class = 0x01,
	.subclass = 0x06,
	.reset = ahci_reset,
	.bind = ahci_bind,
	.cfg_write = ahci_cfg_write,
	.cfg_written = ahci_cfg_written,
	.bar_moved = ahci_bar_moved,
};
PCI_DRIVER(ahci_driver);
