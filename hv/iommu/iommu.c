/* DMA isolation, vendor-neutral: see iommu.h and docs/architecture.md "DMA isolation". */
#include "iommu/iommu.h"
#include "io/pci.h"
#include "mm/hvmem.h"
#include "core/log.h"
#include "core/panic.h"
#include "vmm/mmio.h"
#include "core/pgalloc.h"
#include "core/spinlock.h"
#include "core/x86.h"
#include "core/string.h"

#define IOAPIC_DEFAULT 0xFEC00000ull /* MMIO starts here at the latest */
#define MEDIATED_MAX 8               /* devices with a domain of their own */
#define POLL_CYCLES (1ull << 24)     /* ~5-10 ms of TSC between fault collections */

struct iommu_stats iommu_stats;

static const struct iommu_ops *ops;
static bool active;
static struct spinlock lock; /* attach/flush after start, and poll */

/* ---- The guest domain (hardware-free). ---- */

static bool dma_type(u32 type)
{
	return type == E820_RAM || type == E820_ACPI || type == E820_NVS;
}

static u64 min_u64(u64 a, u64 b)
{
	return a < b ? a : b;
}

/* [base, end) widened to pages, less the hole; pages two ranges share are mapped once. */
static int map_range(const struct pt_alloc *a, const struct iommu_hw *h, u64 root, u64 base, u64 end, u64 hole_base,
    u64 hole_end)
{
	base = ALIGN_DOWN(base, PAGE_SIZE);
	end = ALIGN_UP(end, PAGE_SIZE);
	if (base < hole_end && end > hole_base) { /* never Parapet's region, whatever the map says */
		if (base < hole_base && map_range(a, h, root, base, hole_base, hole_base, hole_end))
			return -1;
		base = hole_end;
	}
	if (base >= end)
		return 0;
	return pt_map_fmt(h->fmt, a, root, base, base, end - base, h->fmt->rw, h->max_shift);
}

int iommu_map_guest(const struct pt_alloc *a, const struct iommu_hw *h, u64 root, const struct memmap *m, u64 hole_base,
    u64 hole_end, u64 mmio_floor)
{
	for (u32 i = 0; i < m->n; i++) {
		u64 base = m->e[i].base, end = base + m->e[i].len;
		if (!dma_type(m->e[i].type)) /* reserved: DRAM only below MMIO */
			end = min_u64(end, mmio_floor);
		if (base < end && map_range(a, h, root, base, end, hole_base, hole_end))
			return -1;
	}
	for (unsigned i = 0; i < h->nfixed; i++)
		if (map_range(a, h, root, h->fixed[i].base, h->fixed[i].end, hole_base, hole_end))
			return -1;
	return 0;
}

#ifndef HOST_TEST

/* ---- Taking the hardware. ---- */

static struct iommu_hw hw;
static u64 mmio_floor;
static struct dma_domain guest;
static struct {
	u16 rid;
	struct dma_domain d;
} mediated[MEDIATED_MAX];
static unsigned nmediated;

static bool new_domain(struct dma_domain *d, u16 id)
{
	d->id = id;
	d->root = pgalloc(1);
	if (iommu_map_guest(&hv_pt_alloc, &hw, d->root, &hvmem.guest_map, hvmem.base, hvmem.end, mmio_floor)) {
		LOG("iommu: cannot build the DMA tables\n");
		return false;
	}
	return true;
}

/* Requester IDs a device can own: every function present on any bus, and every ID on the buses
 * a bridge decodes (aliases of conventional PCI behind PCIe bridges; hot-plugged devices).
 * Also the lowest address of a memory BAR or the ECAM window: where MMIO starts. Not io/pci.c's
 * enumeration: that one follows bridges from bus 0 and keeps at most PCI_DEVS_MAX functions, and
 * runs later (at the handoff in two-step); this must see every function on every bus, first. */
static u8 owned[65536 / 8];

static unsigned scan(u64 *mmio_floor)
{
	static u8 open_bus[256];
	unsigned n = 0;
	struct mcfg_window w;
	u64 mcfg = acpi_find_table(hvmem_outside, acpi_find_rsdp(hvmem_outside), "MCFG");
	*mmio_floor = IOAPIC_DEFAULT;
	if (mcfg && acpi_mcfg_segment0(hvmem_outside, mcfg, &w) && w.base < *mmio_floor)
		*mmio_floor = w.base;
	for (unsigned bus = 0; bus < 256; bus++)
		for (unsigned dev = 0; dev < 32; dev++)
			for (unsigned fn = 0, nfn = 1; fn < nfn; fn++) {
				u8 devfn = (u8)(dev << 3 | fn);
				u16 vendor = (u16)pci_cfg_read((u8)bus, devfn, PCI_VENDOR_ID, 2);
				if (vendor == 0xFFFF || vendor == 0)
					continue;
				u8 ht = (u8)pci_cfg_read((u8)bus, devfn, PCI_HEADER_TYPE, 1), type = ht & 0x7F;
				if (fn == 0 && (ht & 0x80))
					nfn = 8;
				owned[bus << 5 | devfn >> 3] |= (u8)(1u << (devfn & 7));
				n++;
				for (unsigned i = 0; i < (type == 0 ? 6u : type == 1 ? 2u : 0u); i++) {
					u32 bar = pci_cfg_read((u8)bus, devfn, (u16)(PCI_BAR0 + 4 * i), 4);
					if (!(bar & 1) && (bar & ~0xFu) && (bar & ~0xFu) < *mmio_floor)
						*mmio_floor = bar & ~0xFu;
				}
				if (type == 1 || type == 2) {
					u8 sec = (u8)pci_cfg_read((u8)bus, devfn, PCI_SECONDARY_BUS, 1);
					u8 sub = (u8)pci_cfg_read((u8)bus, devfn, PCI_SECONDARY_BUS + 1, 1);
					for (unsigned b = sec; b && b <= sub; b++)
						open_bus[b] = 1;
				}
			}
	for (unsigned b = 1; b < 256; b++)
		if (open_bus[b])
			memset(&owned[b << 5], 0xFF, 32);
	return n;
}

void iommu_init(void)
{
	static const struct iommu_ops *const vendors[] = { &vtd_ops, &amdvi_ops };
	u64 rsdp = acpi_find_rsdp(hvmem_outside), table = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(vendors) && !table; i++)
		if (rsdp && (table = acpi_find_table(hvmem_outside, rsdp, vendors[i]->sig)))
			ops = vendors[i];
	if (!table) {
		LOG("iommu: no DMAR or IVRS table: no IOMMU, DMA isolation OFF\n");
		return;
	}
	unsigned n = scan(&mmio_floor);
	if (!ops->probe(hvmem_outside, table, &hw) || !new_domain(&guest, 1)) {
		LOG("iommu: %s unusable: DMA isolation OFF\n", ops->name);
		ops = NULL;
		return;
	}
	for (u32 rid = 0; rid < 65536; rid++)
		if (owned[rid >> 3] & (1u << (rid & 7)))
			ops->attach((u16)rid, &guest);
	if (!ops->enable()) {
		LOG("iommu: %s did not turn translation on: DMA isolation OFF\n", ops->name);
		return;
	}
	active = true;
	iommu_stats.units = hw.nregs;
	LOG("iommu: %s: %u unit(s), DMA translation on for %u functions and the buses behind bridges; "
	    "memory below %lx mapped, Parapet's unmapped; DMA isolation ON\n",
	    ops->name, hw.nregs, n, mmio_floor);
}

void iommu_dma_allow(u8 bus, u8 devfn, u64 pa, u64 len)
{
	if (!active)
		return;
	u16 rid = (u16)(bus << 8 | devfn);
	spin_lock(&lock);
	unsigned i = 0;
	while (i < nmediated && mediated[i].rid != rid)
		i++;
	bool ok = i < MEDIATED_MAX;
	if (ok && i == nmediated) {
		mediated[i].rid = rid;
		ok = new_domain(&mediated[i].d, (u16)(2 + i));
		nmediated += ok;
	}
	ok = ok && !pt_map_fmt(hw.fmt, &hv_pt_alloc, mediated[i].d.root, pa, pa, len, hw.fmt->rw, PAGE_4K) &&
	     ops->attach(rid, &mediated[i].d);
	if (ok)
		ops->flush();
	spin_unlock(&lock);
	if (!ok)
		LOG("iommu: %02x:%02x.%u: cannot map its %lu KiB at %lx: its DMA there will fault\n", bus, devfn >> 3,
		    devfn & 7, len >> 10, pa);
}

void iommu_dma_revoke(u8 bus, u8 devfn)
{
	if (!active)
		return;
	spin_lock(&lock);
	if (!ops->attach((u16)(bus << 8 | devfn), &guest))
		panic("iommu: %02x:%02x.%u cannot be put back in the guest's domain", bus, devfn >> 3, devfn & 7);
	ops->flush();
	spin_unlock(&lock);
}

/* The guest touched an IOMMU's registers: refused (reads all ones, writes dropped). */
static bool refuse(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	static u32 budget = 8;
	(void)v, (void)ctx, (void)size, (void)val;
	if (log_budget_take(&budget))
		LOG("iommu: guest %s of IOMMU register %lx refused\n", write ? "write" : "read", gpa);
	return false;
}

void iommu_hide(void)
{
	if (!ops)
		return;
	for (unsigned i = 0; i < hw.nregs; i++)
		if (!mmio_trap_add(hw.regs[i].base, ALIGN_UP(hw.regs[i].len, PAGE_SIZE), PT_NONE, refuse, NULL))
			panic("iommu: cannot trap the registers at %lx", hw.regs[i].base);
	u64 rsdp = acpi_find_rsdp(hvmem_outside);
	LOG("iommu: %s table removed from the guest's ACPI root table (%u entries)\n", ops->sig,
	    acpi_unlist(hvmem_outside, rsdp, ops->sig));
}

#endif

bool iommu_resume(void)
{
	return !active || ops->enable();
}

bool iommu_active(void)
{
	return active;
}

/* The first few faults of each requester and direction are logged (one device's burst does not
 * hide another's), then a count at every power of two. Called under `lock`. */
void iommu_fault(u16 rid, u64 addr, bool write, unsigned reason)
{
	static struct {
		u32 key, n;
	} seen[16];
	u64 total = ++iommu_stats.faults;
	u32 key = (u32)rid << 1 | write, i = 0;
	while (i < ARRAY_SIZE(seen) && seen[i].n && seen[i].key != key)
		i++;
	if (i < ARRAY_SIZE(seen) && seen[i].n++ < 4) {
		seen[i].key = key;
		LOG("iommu: DMA %s blocked: requester %02x:%02x.%u address %lx (reason %x)\n", write ? "write" : "read",
		    rid >> 8, (rid >> 3) & 31, rid & 7, addr, reason);
	} else if (!(total & (total - 1))) {
		LOG("iommu: %lu DMA requests blocked so far\n", total);
	}
}

void iommu_poll(bool now)
{
	static u64 last;
	if (!active)
		return;
	u64 t = rdtsc();
	if (!now && t - __atomic_load_n(&last, __ATOMIC_RELAXED) < POLL_CYCLES)
		return;
	if (!spin_trylock(&lock))
		return;
	last = t;
	ops->poll();
	spin_unlock(&lock);
}
