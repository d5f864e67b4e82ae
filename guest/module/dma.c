// SPDX-License-Identifier: GPL-2.0
/*
 * DMA attack tools (mode 0600): devices that Parapet does not mediate, driven from ring 0 by
 * this module itself, aimed at any physical address (guest-physical = host-physical; no
 * IOMMU is visible to the guest). Each writes one command and reads back one result line.
 *
 *   /proc/parapet/ahci    "BDF PORT write|read PHYS LEN LBA": WRITE DMA EXT of LEN bytes from
 *                         memory at PHYS to the disk at LBA, or READ DMA EXT from the disk
 *                         into memory at PHYS, on an AHCI controller's port (command list,
 *                         received-FIS area and command table in a page of this module).
 *                         Read: "ahci: status=ok|error|timeout|nodevice ... tfd= is= serr="
 *   /proc/parapet/e1000   "BDF PHYS LEN COUNT": COUNT frames of LEN bytes from PHYS, PHYS+LEN,
 *                         ... through an Intel 8254x (QEMU's e1000) TX ring of this module.
 *                         Read: "e1000: sent=N status=ok|timeout ..."
 *   /proc/parapet/fwcfg   "dma read|write KEY PHYS LEN": QEMU's fw_cfg DMA interface (ports
 *                         0x514/0x518) with a descriptor of this module: read copies the item
 *                         KEY into memory at PHYS, write copies memory at PHYS into the item.
 *                         Read: "fwcfg: control=0x... op=... key=... phys=... len=..."
 *   /proc/parapet/dmabuf  (0400) "phys=0x... len=N": 1 MiB of this module's RAM holding a known
 *                         pattern, the target of the controls (DMA that must keep working)
 *
 * BDF is "BB:DD.F" (hex, domain 0), "DDDD:BB:DD.F", or "auto" (the first AHCI controller,
 * class 01:06:01; the first 8086:100e). The device must not be bound to a Linux driver
 * (EBUSY): the test guest does not load ahci or e1000 (or unbind them through sysfs).
 * Memory decoding and bus mastering are turned on, INTx off; nothing is restored. Every wait
 * is bounded. Numbers are decimal or 0x hexadecimal.
 */
#include <linux/delay.h>
#include <linux/errno.h>
#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/iopoll.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <asm/byteorder.h>

#include "parapet.h"

static DEFINE_MUTEX(dma_lock);
static char ahci_result[192] = "ahci: status=none\n";
static char e1000_result[160] = "e1000: sent=0 status=none\n";
static char fwcfg_result[128] = "fwcfg: control=none\n";

/* ---- common ---------------------------------------------------------------------------- */

/* Splits s at blanks into at most max words; returns how many. */
static int dma_words(char *s, char **w, int max)
{
	int n = 0;
	char *tok;

	while (n < max && (tok = strsep(&s, " \t\n")) != NULL)
		if (*tok)
			w[n++] = tok;
	return n;
}

static int dma_num(const char *s, unsigned long *v)
{
	return kstrtoul(s, 0, v);
}

/* The device named by "BB:DD.F", "DDDD:BB:DD.F" or "auto" (found with match()). */
static struct pci_dev *dma_pci(const char *bdf, struct pci_dev *(*match)(void))
{
	unsigned int dom = 0, bus, dev, fn;

	if (!strcmp(bdf, "auto"))
		return match();
	if (sscanf(bdf, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4) {
		dom = 0;
		if (sscanf(bdf, "%x:%x.%x", &bus, &dev, &fn) != 3)
			return NULL;
	}
	if (bus > 255 || dev > 31 || fn > 7)
		return NULL;
	return pci_get_domain_bus_and_slot(dom, bus, PCI_DEVFN(dev, fn));
}

/* Refuses a device a Linux driver owns; turns on memory decoding and bus mastering. */
static int dma_claim(struct pci_dev *pdev)
{
	u16 cmd;

	if (pdev->dev.driver)
		return -EBUSY;
	pci_read_config_word(pdev, PCI_COMMAND, &cmd);
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
	pci_write_config_word(pdev, PCI_COMMAND, cmd);
	return 0;
}

static ssize_t dma_copy_cmd(char *buf, size_t size, const char __user *ubuf, size_t len)
{
	if (len == 0 || len >= size)
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = 0;
	return 0;
}

static int dma_result_show(struct seq_file *m, void *v)
{
	mutex_lock(&dma_lock);
	seq_puts(m, m->private);
	mutex_unlock(&dma_lock);
	return 0;
}

/* ---- AHCI ------------------------------------------------------------------------------ */

#define AHCI_GHC 0x04
#define AHCI_IS 0x08
#define AHCI_PI 0x0c
#define AHCI_GHC_AE (1u << 31)
#define AHCI_PORT(p, reg) (0x100 + (p)*0x80 + (reg))
#define PX_CLB 0x00
#define PX_CLBU 0x04
#define PX_FB 0x08
#define PX_FBU 0x0c
#define PX_IS 0x10
#define PX_IE 0x14
#define PX_CMD 0x18
#define PX_TFD 0x20
#define PX_SSTS 0x28
#define PX_SERR 0x30
#define PX_CI 0x38
#define PX_CMD_ST (1u << 0)
#define PX_CMD_SUD (1u << 1)
#define PX_CMD_POD (1u << 2)
#define PX_CMD_FRE (1u << 4)
#define PX_CMD_FR (1u << 14)
#define PX_CMD_CR (1u << 15)
#define PX_IS_ERRORS 0x7d800010u /* TFES HBFS HBDS IFS INFS OFS UFS */
#define TFD_ERR 0x01
#define TFD_DRQ 0x08
#define TFD_BSY 0x80

#define ATA_READ_DMA_EXT 0x25
#define ATA_WRITE_DMA_EXT 0x35

#define AHCI_PRD_MAX (4u << 20)  /* bytes per PRD entry */
#define AHCI_LEN_MAX (32u << 20) /* 65536 sectors, one command */
#define AHCI_PRDS (AHCI_LEN_MAX / AHCI_PRD_MAX)
/* One page: command list at 0 (1 KiB aligned), received FISes at 1 KiB, command table at 2 KiB. */
#define AHCI_FIS_OFF 0x400
#define AHCI_CT_OFF 0x800

struct ahci_cmd_header {
	__le32 flags; /* CFL 4:0, W 6, C 10, PRDTL 31:16 */
	__le32 prdbc;
	__le32 ctba;
	__le32 ctbau;
	__le32 rsvd[4];
};

struct ahci_prd {
	__le32 dba;
	__le32 dbau;
	__le32 rsvd;
	__le32 dbc; /* byte count - 1, bit 0 set */
};

struct ahci_cmd_table {
	u8 cfis[64];
	u8 acmd[16];
	u8 rsvd[48];
	struct ahci_prd prd[AHCI_PRDS];
};

static struct pci_dev *ahci_auto(void)
{
	return pci_get_class(PCI_CLASS_STORAGE_SATA_AHCI, NULL);
}

/* Clears bit `clear` of PxCMD and waits (up to 500 ms) for `busy` to go. */
static int ahci_stop_bit(void __iomem *cmd, u32 clear, u32 busy)
{
	u32 v = readl(cmd);

	if (v & clear)
		writel(v & ~clear, cmd);
	return readl_poll_timeout(cmd, v, !(v & busy), 1000, 500000);
}

static int ahci_stop(void __iomem *port)
{
	int err = ahci_stop_bit(port + PX_CMD, PX_CMD_ST, PX_CMD_CR);

	return err ? err : ahci_stop_bit(port + PX_CMD, PX_CMD_FRE, PX_CMD_FR);
}

static void ahci_run(struct pci_dev *pdev, unsigned int portno, bool write, u64 phys, u32 len, u64 lba)
{
	const char *status = "ok", *stage = "";
	void __iomem *abar, *port;
	struct ahci_cmd_header *hdr;
	struct ahci_cmd_table *ct;
	u32 v, tfd = 0, is = 0, serr = 0, prdbc = 0, nprd = 0, off;
	unsigned long page = 0;
	u64 table;
	bool freeable = true;

	if (!(pci_resource_flags(pdev, 5) & IORESOURCE_MEM) || !pci_resource_start(pdev, 5)) {
		snprintf(ahci_result, sizeof(ahci_result), "ahci: status=error stage=bar5\n");
		return;
	}
	abar = ioremap(pci_resource_start(pdev, 5), pci_resource_len(pdev, 5));
	if (!abar) {
		snprintf(ahci_result, sizeof(ahci_result), "ahci: status=error stage=ioremap\n");
		return;
	}
	port = abar + AHCI_PORT(portno, 0);
	writel(readl(abar + AHCI_GHC) | AHCI_GHC_AE, abar + AHCI_GHC);
	if (!(readl(abar + AHCI_PI) & (1u << portno))) {
		status = "error";
		stage = " stage=port-not-implemented";
		goto out_unmap;
	}

	/* Stop the engine (ST, then FRE) before its command list and FIS area move. */
	if (ahci_stop(port)) {
		status = "timeout";
		stage = " stage=stop";
		goto out_regs;
	}

	page = __get_free_page(GFP_KERNEL | GFP_DMA32 | __GFP_ZERO);
	if (!page) {
		status = "error";
		stage = " stage=nomem";
		goto out_regs;
	}
	hdr = (struct ahci_cmd_header *)page;
	ct = (struct ahci_cmd_table *)(page + AHCI_CT_OFF);
	table = virt_to_phys(ct);

	/* Register H2D FIS: the command, LBA mode, 48-bit LBA and sector count. */
	ct->cfis[0] = 0x27;
	ct->cfis[1] = 0x80;
	ct->cfis[2] = write ? ATA_WRITE_DMA_EXT : ATA_READ_DMA_EXT;
	ct->cfis[4] = lba;
	ct->cfis[5] = lba >> 8;
	ct->cfis[6] = lba >> 16;
	ct->cfis[7] = 0x40;
	ct->cfis[8] = lba >> 24;
	ct->cfis[9] = lba >> 32;
	ct->cfis[10] = lba >> 40;
	ct->cfis[12] = (len / 512) & 0xff;
	ct->cfis[13] = ((len / 512) >> 8) & 0xff;
	for (off = 0; off < len; off += AHCI_PRD_MAX, nprd++) {
		u64 a = phys + off;
		u32 n = min_t(u32, len - off, AHCI_PRD_MAX);

		ct->prd[nprd].dba = cpu_to_le32(lower_32_bits(a));
		ct->prd[nprd].dbau = cpu_to_le32(upper_32_bits(a));
		ct->prd[nprd].dbc = cpu_to_le32(n - 1);
	}
	hdr[0].flags = cpu_to_le32(5 | (write ? 1u << 6 : 0) | (nprd << 16));
	hdr[0].ctba = cpu_to_le32(lower_32_bits(table));
	hdr[0].ctbau = cpu_to_le32(upper_32_bits(table));

	writel(lower_32_bits(virt_to_phys((void *)page)), port + PX_CLB);
	writel(upper_32_bits(virt_to_phys((void *)page)), port + PX_CLBU);
	writel(lower_32_bits(virt_to_phys((void *)(page + AHCI_FIS_OFF))), port + PX_FB);
	writel(upper_32_bits(virt_to_phys((void *)(page + AHCI_FIS_OFF))), port + PX_FBU);
	writel(0, port + PX_IE);
	writel(~0u, port + PX_SERR);
	writel(~0u, port + PX_IS);
	writel(1u << portno, abar + AHCI_IS);
	writel(readl(port + PX_CMD) | PX_CMD_SUD | PX_CMD_POD | PX_CMD_FRE, port + PX_CMD);

	if ((readl(port + PX_SSTS) & 0xf) != 3) {
		status = "nodevice";
		goto out_stop;
	}
	if (readl_poll_timeout(port + PX_TFD, v, !(v & (TFD_BSY | TFD_DRQ)), 1000, 1000000)) {
		status = "timeout";
		stage = " stage=busy";
		goto out_stop;
	}
	writel(readl(port + PX_CMD) | PX_CMD_ST, port + PX_CMD);
	wmb();
	writel(1, port + PX_CI);
	if (readl_poll_timeout(port + PX_CI, v, !(v & 1) || (readl(port + PX_IS) & PX_IS_ERRORS), 200, 60000000)) {
		status = "timeout";
		stage = " stage=command";
	}
	prdbc = le32_to_cpu(READ_ONCE(hdr[0].prdbc));

out_stop:
	tfd = readl(port + PX_TFD);
	is = readl(port + PX_IS);
	serr = readl(port + PX_SERR);
	if (!strcmp(status, "ok") && ((tfd & TFD_ERR) || (is & PX_IS_ERRORS)))
		status = "error";
	/* Free the page only once the port is known to be idle. */
	if (ahci_stop(port))
		freeable = false;
	writel(~0u, port + PX_IS);
	writel(1u << portno, abar + AHCI_IS);
	goto out_result;
out_regs:
	tfd = readl(port + PX_TFD);
	is = readl(port + PX_IS);
	serr = readl(port + PX_SERR);
out_result:
	if (page && freeable)
		free_page(page);
out_unmap:
	snprintf(ahci_result, sizeof(ahci_result),
	    "ahci: status=%s tfd=0x%02x is=0x%08x serr=0x%08x%s op=%s port=%u phys=0x%llx len=%u lba=%llu bytes=%u%s\n",
	    status, tfd & 0xffff, is, serr, stage, write ? "write" : "read", portno, (unsigned long long)phys, len,
	    (unsigned long long)lba, prdbc, freeable ? "" : " leaked=1");
	iounmap(abar);
}

static ssize_t parapet_ahci_write(struct file *f, const char __user *ubuf, size_t len, loff_t *off)
{
	unsigned long portno, phys, n, lba;
	struct pci_dev *pdev;
	char buf[128], *w[6];
	bool write;
	ssize_t err;

	err = dma_copy_cmd(buf, sizeof(buf), ubuf, len);
	if (err)
		return err;
	if (dma_words(buf, w, 6) != 6 || dma_num(w[1], &portno) || dma_num(w[3], &phys) || dma_num(w[4], &n) ||
	    dma_num(w[5], &lba))
		return -EINVAL;
	if (!strcmp(w[2], "write"))
		write = true;
	else if (!strcmp(w[2], "read"))
		write = false;
	else
		return -EINVAL;
	if (portno > 31 || n == 0 || n % 512 || n > AHCI_LEN_MAX || (phys & 1) || lba >> 48)
		return -EINVAL;
	pdev = dma_pci(w[0], ahci_auto);
	if (!pdev)
		return -ENODEV;
	mutex_lock(&dma_lock);
	err = dma_claim(pdev);
	if (!err)
		ahci_run(pdev, portno, write, phys, n, lba);
	mutex_unlock(&dma_lock);
	pci_dev_put(pdev);
	return err ? err : (ssize_t)len;
}

/* ---- e1000 ----------------------------------------------------------------------------- */

#define E1000_CTRL 0x0000
#define E1000_STATUS 0x0008
#define E1000_ICR 0x00c0
#define E1000_IMC 0x00d8
#define E1000_TCTL 0x0400
#define E1000_TIPG 0x0410
#define E1000_TDBAL 0x3800
#define E1000_TDBAH 0x3804
#define E1000_TDLEN 0x3808
#define E1000_TDH 0x3810
#define E1000_TDT 0x3818
#define E1000_CTRL_ASDE (1u << 5)
#define E1000_CTRL_SLU (1u << 6)
#define E1000_CTRL_RST (1u << 26)
#define E1000_TCTL_EN (1u << 1)
#define E1000_TCTL_PSP (1u << 3)
#define E1000_TXD_EOP 0x01
#define E1000_TXD_IFCS 0x02
#define E1000_TXD_RS 0x08
#define E1000_TXD_DD 0x01
#define E1000_LEN_MAX 16000
#define E1000_COUNT_MAX 100000
#define E1000_RING (PAGE_SIZE / sizeof(struct e1000_txd))

struct e1000_txd {
	__le64 addr;
	__le16 length;
	u8 cso;
	u8 cmd;
	u8 status;
	u8 css;
	__le16 special;
};

static struct pci_dev *e1000_auto(void)
{
	return pci_get_device(PCI_VENDOR_ID_INTEL, 0x100e, NULL);
}

static void e1000_run(struct pci_dev *pdev, u64 phys, u32 len, u32 count)
{
	const char *status = "ok";
	struct e1000_txd *ring;
	unsigned long page;
	void __iomem *bar;
	u32 v, sent = 0, tail = 0, link;
	bool freeable = true;

	if (!(pci_resource_flags(pdev, 0) & IORESOURCE_MEM) || !pci_resource_start(pdev, 0)) {
		snprintf(e1000_result, sizeof(e1000_result), "e1000: sent=0 status=error stage=bar0\n");
		return;
	}
	bar = ioremap(pci_resource_start(pdev, 0), min_t(resource_size_t, pci_resource_len(pdev, 0), 0x20000));
	page = __get_free_page(GFP_KERNEL | GFP_DMA32 | __GFP_ZERO);
	if (!bar || !page) {
		if (bar)
			iounmap(bar);
		free_page(page);
		snprintf(e1000_result, sizeof(e1000_result), "e1000: sent=0 status=error stage=nomem\n");
		return;
	}
	ring = (struct e1000_txd *)page;

	/* Reset (which stops both rings), interrupts masked, link up. */
	writel(~0u, bar + E1000_IMC);
	writel(readl(bar + E1000_CTRL) | E1000_CTRL_RST, bar + E1000_CTRL);
	msleep(10);
	if (readl_poll_timeout(bar + E1000_CTRL, v, !(v & E1000_CTRL_RST), 1000, 500000)) {
		status = "timeout";
		goto out;
	}
	writel(~0u, bar + E1000_IMC);
	readl(bar + E1000_ICR);
	writel(readl(bar + E1000_CTRL) | E1000_CTRL_SLU | E1000_CTRL_ASDE, bar + E1000_CTRL);

	writel(lower_32_bits(virt_to_phys(ring)), bar + E1000_TDBAL);
	writel(upper_32_bits(virt_to_phys(ring)), bar + E1000_TDBAH);
	writel(PAGE_SIZE, bar + E1000_TDLEN);
	writel(0, bar + E1000_TDH);
	writel(0, bar + E1000_TDT);
	writel(10 | (8 << 10) | (6 << 20), bar + E1000_TIPG);
	writel(E1000_TCTL_EN | E1000_TCTL_PSP | (0x0f << 4) | (0x40 << 12), bar + E1000_TCTL);

	/* One frame at a time: descriptor at the tail, tail on, wait for its DD. */
	while (sent < count) {
		struct e1000_txd *d = &ring[tail];

		WRITE_ONCE(d->status, 0);
		d->addr = cpu_to_le64(phys + (u64)sent * len);
		d->length = cpu_to_le16(len);
		d->cmd = E1000_TXD_EOP | E1000_TXD_IFCS | E1000_TXD_RS;
		wmb();
		tail = (tail + 1) % E1000_RING;
		writel(tail, bar + E1000_TDT);
		if (read_poll_timeout(READ_ONCE, v, v & E1000_TXD_DD, 50, 1000000, false, d->status)) {
			status = "timeout";
			break;
		}
		sent++;
	}

out:
	link = readl(bar + E1000_STATUS);
	snprintf(e1000_result, sizeof(e1000_result),
	    "e1000: sent=%u status=%s phys=0x%llx len=%u count=%u tdh=%u tdt=%u link=%u\n", sent, status,
	    (unsigned long long)phys, len, count, readl(bar + E1000_TDH), readl(bar + E1000_TDT), (link >> 1) & 1);
	/* Stop transmitting; the ring may go only once the head has caught up. */
	writel(0, bar + E1000_TCTL);
	if (readl(bar + E1000_TDH) != readl(bar + E1000_TDT)) {
		writel(readl(bar + E1000_CTRL) | E1000_CTRL_RST, bar + E1000_CTRL);
		msleep(10);
		if (readl(bar + E1000_CTRL) & E1000_CTRL_RST)
			freeable = false;
	}
	if (freeable)
		free_page(page);
	iounmap(bar);
}

static ssize_t parapet_e1000_write(struct file *f, const char __user *ubuf, size_t len, loff_t *off)
{
	unsigned long phys, n, count;
	struct pci_dev *pdev;
	char buf[128], *w[4];
	ssize_t err;

	err = dma_copy_cmd(buf, sizeof(buf), ubuf, len);
	if (err)
		return err;
	if (dma_words(buf, w, 4) != 4 || dma_num(w[1], &phys) || dma_num(w[2], &n) || dma_num(w[3], &count))
		return -EINVAL;
	if (n == 0 || n > E1000_LEN_MAX || count == 0 || count > E1000_COUNT_MAX)
		return -EINVAL;
	pdev = dma_pci(w[0], e1000_auto);
	if (!pdev)
		return -ENODEV;
	mutex_lock(&dma_lock);
	err = dma_claim(pdev);
	if (!err)
		e1000_run(pdev, phys, n, count);
	mutex_unlock(&dma_lock);
	pci_dev_put(pdev);
	return err ? err : (ssize_t)len;
}

/* ---- fw_cfg DMA ------------------------------------------------------------------------ */

#define FW_CFG_PORT_DMA_HI 0x514
#define FW_CFG_PORT_DMA_LO 0x518
#define FW_CFG_DMA_ERROR 0x01
#define FW_CFG_DMA_READ 0x02
#define FW_CFG_DMA_SELECT 0x08
#define FW_CFG_DMA_WRITE 0x10

struct fwcfg_dma {
	__be32 control;
	__be32 length;
	__be64 address;
};

static ssize_t parapet_fwcfg_write(struct file *f, const char __user *ubuf, size_t len, loff_t *off)
{
	unsigned long key, phys, n;
	struct fwcfg_dma *d;
	char buf[128], *w[5];
	u64 dphys;
	u32 ctl = ~0u;
	bool write;
	ssize_t err;
	int i;

	err = dma_copy_cmd(buf, sizeof(buf), ubuf, len);
	if (err)
		return err;
	if (dma_words(buf, w, 5) != 5 || strcmp(w[0], "dma") || dma_num(w[2], &key) || dma_num(w[3], &phys) ||
	    dma_num(w[4], &n))
		return -EINVAL;
	if (!strcmp(w[1], "write"))
		write = true;
	else if (!strcmp(w[1], "read"))
		write = false;
	else
		return -EINVAL;
	if (key > 0xffff || n > 0xffffffffUL)
		return -EINVAL;
	d = kzalloc(sizeof(*d), GFP_KERNEL | GFP_DMA32);
	if (!d)
		return -ENOMEM;
	d->control = cpu_to_be32((u32)key << 16 | FW_CFG_DMA_SELECT | (write ? FW_CFG_DMA_WRITE : FW_CFG_DMA_READ));
	d->length = cpu_to_be32(n);
	d->address = cpu_to_be64(phys);
	dphys = virt_to_phys(d);

	mutex_lock(&dma_lock);
	wmb();
	outl(cpu_to_be32(upper_32_bits(dphys)), FW_CFG_PORT_DMA_HI);
	outl(cpu_to_be32(lower_32_bits(dphys)), FW_CFG_PORT_DMA_LO);
	/* QEMU completes the transfer within the port write; wait a second at most anyway. */
	for (i = 0; i < 1000; i++) {
		ctl = be32_to_cpu(READ_ONCE(d->control));
		if (!(ctl & ~FW_CFG_DMA_ERROR))
			break;
		usleep_range(1000, 2000);
	}
	snprintf(fwcfg_result, sizeof(fwcfg_result),
	    "fwcfg: control=0x%08x status=%s op=%s key=0x%04lx phys=0x%lx len=%lu\n", ctl,
	    ctl & ~FW_CFG_DMA_ERROR ? "timeout"
	    : ctl                   ? "error"
				    : "ok",
	    write ? "write" : "read", key, phys, n);
	mutex_unlock(&dma_lock);
	/* A descriptor QEMU never finished could still be written: keep it then. */
	if (!(ctl & ~FW_CFG_DMA_ERROR))
		kfree(d);
	return len;
}

/* ---- files ----------------------------------------------------------------------------- */

#define DMA_PROC_OPS(name, result)                                               \
	static int parapet_##name##_open(struct inode *inode, struct file *file) \
	{                                                                        \
		return single_open(file, dma_result_show, result);               \
	}                                                                        \
	static const struct proc_ops parapet_##name##_ops = {                    \
		.proc_open = parapet_##name##_open,                              \
		.proc_read = seq_read,                                           \
		.proc_write = parapet_##name##_write,                            \
		.proc_lseek = seq_lseek,                                         \
		.proc_release = single_release,                                  \
	}

DMA_PROC_OPS(ahci, ahci_result);
DMA_PROC_OPS(e1000, e1000_result);
DMA_PROC_OPS(fwcfg, fwcfg_result);

/*
 * /proc/parapet/dmabuf (0400): "phys=0x... len=N" of 1 MiB of this module's own RAM, for the
 * controls (DMA that must keep working): every 32-byte cell at offset i holds
 * "PARAPET-DMABUF %08x" (i in hex), padded with '.' to 31 bytes, then '\n'.
 */
#define DMABUF_ORDER 8
static unsigned long dmabuf;

static int parapet_dmabuf_show(struct seq_file *m, void *v)
{
	seq_printf(m, "phys=0x%llx len=%lu\n", (unsigned long long)virt_to_phys((void *)dmabuf),
	    PAGE_SIZE << DMABUF_ORDER);
	return 0;
}

static int parapet_dmabuf_open(struct inode *inode, struct file *file)
{
	return single_open(file, parapet_dmabuf_show, NULL);
}

static const struct proc_ops parapet_dmabuf_ops = {
	.proc_open = parapet_dmabuf_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

static void dmabuf_fill(char *p, unsigned long len)
{
	char cell[40];
	unsigned long i;

	for (i = 0; i < len; i += 32) {
		int n = scnprintf(cell, sizeof(cell), "PARAPET-DMABUF %08lx", i);

		memset(cell + n, '.', 31 - n);
		cell[31] = '\n';
		memcpy(p + i, cell, 32);
	}
}

int parapet_dma_init(struct proc_dir_entry *dir)
{
	dmabuf = __get_free_pages(GFP_KERNEL, DMABUF_ORDER);
	if (!dmabuf)
		return -ENOMEM;
	dmabuf_fill((char *)dmabuf, PAGE_SIZE << DMABUF_ORDER);
	if (!proc_create("ahci", 0600, dir, &parapet_ahci_ops) ||
	    !proc_create("e1000", 0600, dir, &parapet_e1000_ops) ||
	    !proc_create("fwcfg", 0600, dir, &parapet_fwcfg_ops) ||
	    !proc_create("dmabuf", 0400, dir, &parapet_dmabuf_ops))
		return -ENOMEM;
	return 0;
}

void parapet_dma_exit(void)
{
	if (dmabuf)
		free_pages(dmabuf, DMABUF_ORDER);
	dmabuf = 0;
}
