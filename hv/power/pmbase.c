/*
 * The ACPI power-management I/O block stays where the FADT says: a guest that moved it (or
 * turned its decoding off and on elsewhere) could write SLP_EN at ports Parapet does not
 * intercept and sleep without it. On the chipsets below the block's base and enable are
 * locked: configuration writes that touch them are dropped, and after S3 (which resets them)
 * Parapet writes back what firmware had set.
 *   PIIX4 power management function (8086:7113): PMBA 40h-43h, PMREGMISC 80h bit 0 (PIIX4
 *   datasheet §3.4.2); ICH9 LPC bridge (8086:2918): PMBASE 40h-43h, ACPI_CNTL 44h (ICH9
 *   datasheet §13.1.10-11).
 */
#include "power/internal.h"
#include "io/pci.h"
#include "core/log.h"

static u32 log_budget = 8;

/* The values locked, as firmware left them: put back after S3, which resets them (QEMU's ICH9
 * does, and its SeaBIOS does not restore them; on real boards firmware does it too). */
#define PM_DEVS_MAX 2
static struct {
	struct pci_dev *d;
	u32 base;
	u8 enable;
} locked[PM_DEVS_MAX];
static unsigned nlocked;

static u16 enable_reg(const struct pci_dev *d)
{
	return d->device == 0x7113 ? 0x80 : 0x44;
}

static void pm_bind(struct pci_dev *d)
{
	if (nlocked < PM_DEVS_MAX)
		locked[nlocked++] = (typeof(locked[0])){ d, pci_read(d, 0x40, 4), (u8)pci_read(d, enable_reg(d), 1) };
}

void power_pmbase_resume(void)
{
	for (unsigned i = 0; i < nlocked; i++) {
		struct pci_dev *d = locked[i].d;
		if (pci_read(d, 0x40, 4) == locked[i].base && (u8)pci_read(d, enable_reg(d), 1) == locked[i].enable)
			continue;
		pci_write(d, 0x40, 4, locked[i].base);
		pci_write(d, enable_reg(d), 1, locked[i].enable);
		LOG("power: %02x:%02x.%u: the ACPI PM block's base and enable put back after the sleep\n", d->bus,
		    d->devfn >> 3, d->devfn & 7);
	}
}

static bool overlaps(u16 offset, unsigned size, u16 lo, u16 hi)
{
	return offset <= hi && offset + size > lo;
}

static bool pm_cfg_write(struct pci_dev *d, u16 offset, unsigned size, u32 *val)
{
	(void)val;
	bool piix4 = d->device == 0x7113;
	if (!overlaps(offset, size, 0x40, piix4 ? 0x43 : 0x44) && !(piix4 && overlaps(offset, size, 0x80, 0x80)))
		return true;
	if (log_budget_take(&log_budget))
		LOG("power: %02x:%02x.%u: write to the ACPI PM block's base or enable (config %x) dropped\n", d->bus,
		    d->devfn >> 3, d->devfn & 7, offset);
	return false;
}

static const struct pci_driver piix4_pm_driver = {
	.name = "piix4-pm",
	.vendor = 0x8086,
	.device = 0x7113,
	.class = 0xFF,
	.subclass = 0xFF,
	.bind = pm_bind,
	.cfg_write = pm_cfg_write,
};
PCI_DRIVER(piix4_pm_driver);

static const struct pci_driver ich9_lpc_driver = {
	.name = "ich9-lpc",
	.vendor = 0x8086,
	.device = 0x2918,
	.class = 0xFF,
	.subclass = 0xFF,
	.bind = pm_bind,
	.cfg_write = pm_cfg_write,
};
PCI_DRIVER(ich9_lpc_driver);
