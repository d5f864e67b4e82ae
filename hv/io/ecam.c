/* ECAM trapping: see ecam.h. */
#include "io/ecam.h"
#include "io/acpi.h"
#include "io/pci.h"
#include "vmm/mmio.h"
#include "mm/hvmem.h"
#include "core/log.h"

static struct mcfg_window window;

bool q35_pciexbar_decode(u64 bar, u64 *base, u8 *bus_end)
{
	if (!(bar & 1))
		return false;
	switch ((bar >> 1) & 3) {
	case 0:
		*bus_end = 255;
		*base = bar & 0xFF0000000ull;
		break; /* 256 MiB */
	case 1:
		*bus_end = 127;
		*base = bar & 0xFF8000000ull;
		break; /* 128 MiB */
	case 2:
		*bus_end = 63;
		*base = bar & 0xFFC000000ull;
		break; /* 64 MiB */
	default:
		return false;
	}
	return true;
}

/* The q35 host bridge: the guest may not move or disable the ECAM window. */
static bool q35_cfg_write(struct pci_dev *d, u16 offset, unsigned size, u32 *val)
{
	(void)d, (void)val;
	return !(offset < Q35_PCIEXBAR + 8 && offset + size > Q35_PCIEXBAR);
}

static const struct pci_driver q35_host_driver = {
	.name = "q35-host",
	.vendor = Q35_VENDOR,
	.device = Q35_DEVICE,
	.class = 0xFF,
	.subclass = 0xFF,
	.cfg_write = q35_cfg_write,
	.support = true,
};
PCI_DRIVER(q35_host_driver);

/* A guest access to a trapped ECAM page: the same path as port 0xCFC. */
bool ecam_access(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	(void)v;
	const struct mcfg_window *w = ctx;
	u64 off = gpa - w->base;
	u8 bus = (u8)(off >> 20), devfn = (u8)(off >> 12);
	u16 reg = (u16)(off & 0xFFF);
	if (reg & (size - 1))
		return false; /* unaligned: undefined in ECAM; refused */
	unsigned parts = size == 8 ? 2 : 1, psize = size == 8 ? 4 : size;
	u64 r = 0;
	for (unsigned i = 0; i < parts; i++) {
		u16 o = (u16)(reg + 4 * i);
		if (write)
			pci_guest_write(bus, devfn, o, psize, (u32)(*val >> (32 * i)));
		else
			r |= (u64)pci_guest_read(bus, devfn, o, psize) << (32 * i);
	}
	if (!write)
		*val = r;
	return true;
}

void ecam_init(void)
{
	struct mcfg_window w = { 0 };
	u64 rsdp = acpi_find_rsdp(hvmem_outside);
	u64 mcfg = rsdp ? acpi_find_table(hvmem_outside, rsdp, "MCFG") : 0;
	bool have = mcfg && acpi_mcfg_segment0(hvmem_outside, mcfg, &w);

	/* On q35 the chipset says where it decodes the window; that is what counts. */
	struct pci_dev *hb = pci_find(0, 0);
	if (hb && hb->vendor == Q35_VENDOR && hb->device == Q35_DEVICE) {
		u64 bar = pci_read(hb, Q35_PCIEXBAR, 4) | (u64)pci_read(hb, Q35_PCIEXBAR + 4, 4) << 32, base;
		u8 end;
		if (q35_pciexbar_decode(bar, &base, &end)) {
			if (have && (w.base != base || w.bus_end > end))
				LOG("ecam: MCFG says %lx buses %u-%u, PCIEXBAR says %lx buses 0-%u; using PCIEXBAR\n",
				    w.base, w.bus_start, w.bus_end, base, end);
			w = (struct mcfg_window){ base, 0, 0, end };
			have = true;
		}
	}
	if (!have) {
		LOG("ecam: no MMIO configuration window\n");
		return;
	}
	window = w;
	pci_set_ecam(w.base, w.bus_start, w.bus_end);

	struct pci_dev *d;
	unsigned n = pci_devices(&d), trapped = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!d[i].drv || d[i].bus < w.bus_start || d[i].bus > w.bus_end)
			continue;
		u64 page = w.base + ((u64)d[i].bus << 20) + ((u64)d[i].devfn << 12);
		if (mmio_trap_add(page, 4096, PT_NONE, ecam_access, &window))
			trapped++;
		else
			LOG("ecam: cannot trap %lx\n", page);
	}
	LOG("ecam: window at %lx, buses %u-%u; %u function pages trapped\n", w.base, w.bus_start, w.bus_end, trapped);
}
