/* I/O APIC redirection entries without INIT: see ioapic.h. */
#include "vmm/ioapic.h"
#include "vmm/mmio.h"
#include "vmm/vcpu.h"
#include "io/acpi.h"
#include "mm/hvmem.h"
#include "core/lapic.h"
#include "core/log.h"
#include "core/spinlock.h"

#define IOAPICS_MAX 8
#define IOREGSEL 0x00 /* selects the register IOWIN reads and writes */
#define IOWIN 0x10
#define IOREDTBL_FIRST 0x10 /* entry n: low dword 0x10 + 2n, high dword 0x11 + 2n */
#define IOAPICVER 0x01      /* bits 23:16: the highest redirection entry */
#define RTE_DELIVERY(lo) (((lo) >> 8) & 7u)
#define RTE_MASKED (1u << 16)
#define RTE_MAX 240

struct ioapic {
	u64 base;
	struct spinlock lock; /* IOREGSEL and IOWIN: the check and the write as one */
	unsigned nrte;
	u32 saved[RTE_MAX][2]; /* the entries as firmware left them (low, high dword) */
};

static struct ioapic ioapics[IOAPICS_MAX];
static u32 log_budget = 16;

/*
 * A guest write to the I/O APIC page, performed dword by dword as the I/O APIC takes it: the
 * data window IOWIN only whole dwords (a narrower store there is ignored, as QEMU's and Intel's
 * I/O APICs ignore it), checked for INIT; the select register and the others any size, the
 * bytes a store covers merged into the dword's current value (a qword store is two dwords).
 * Reads are not trapped.
 */
static bool ioapic_mmio(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	struct ioapic *a = ctx;
	u32 off = gpa & 0xFFF, end = off + size, sel = 0, bad = 0;
	bool refused = false;
	if (!write)
		return false;
	spin_lock(&a->lock);
	for (u32 d = off & ~3u; d < end; d += 4) {
		volatile u32 *reg = (volatile u32 *)(a->base + d);
		u32 x;
		bool whole = off <= d && end >= d + 4;
		if (d == IOWIN && !whole)
			continue; /* the window takes dwords only; the rest it ignores */
		if (size == 4 && off == d) {
			x = (u32)*val;
		} else {
			x = *reg;
			for (u32 i = d > off ? d : off; i < end && i < d + 4; i++)
				x = (x & ~(0xFFu << 8 * (i - d))) | (u32)((*val >> 8 * (i - off)) & 0xFF)
									<< 8 * (i - d);
		}
		if (d == IOWIN) {
			sel = *(volatile u32 *)(a->base + IOREGSEL) & 0xFF;
			if (sel >= IOREDTBL_FIRST && !(sel & 1) && RTE_DELIVERY(x) == ICR_MODE_INIT) {
				refused = true;
				bad = x;
				continue;
			}
		}
		*reg = x;
	}
	spin_unlock(&a->lock);
	if (refused && log_budget_take(&log_budget))
		LOG("ioapic: cpu%u: redirection entry %u with delivery mode INIT refused (%x)\n", v->id,
		    (sel - IOREDTBL_FIRST) / 2, bad);
	return !refused;
}

static u32 reg_read(struct ioapic *a, u32 sel)
{
	*(volatile u32 *)(a->base + IOREGSEL) = sel;
	return *(volatile u32 *)(a->base + IOWIN);
}

static void reg_write(struct ioapic *a, u32 sel, u32 val)
{
	*(volatile u32 *)(a->base + IOREGSEL) = sel;
	*(volatile u32 *)(a->base + IOWIN) = val;
}

void ioapic_restore(void)
{
	for (unsigned i = 0; i < IOAPICS_MAX && ioapics[i].base; i++) {
		struct ioapic *a = &ioapics[i];
		spin_lock(&a->lock);
		for (unsigned e = 0; e < a->nrte; e++) {
			u32 sel = IOREDTBL_FIRST + 2 * e;
			reg_write(a, sel, RTE_MASKED);
			reg_write(a, sel + 1, a->saved[e][1]);
			reg_write(a, sel, a->saved[e][0]);
		}
		spin_unlock(&a->lock);
	}
}

void ioapic_init(void)
{
	u64 rsdp = acpi_find_rsdp(hvmem_outside);
	u64 madt = rsdp ? acpi_find_table(hvmem_outside, rsdp, "APIC") : 0;
	u64 bases[IOAPICS_MAX];
	unsigned n = madt ? acpi_madt_ioapics(hvmem_outside, madt, bases, IOAPICS_MAX) : 0;
	for (unsigned i = 0; i < n; i++) {
		struct ioapic *a = &ioapics[i];
		a->base = bases[i];
		a->nrte = ((reg_read(a, IOAPICVER) >> 16) & 0xFF) + 1;
		if (a->nrte > RTE_MAX)
			a->nrte = RTE_MAX;
		for (unsigned e = 0; e < a->nrte; e++) {
			a->saved[e][0] = reg_read(a, IOREDTBL_FIRST + 2 * e);
			a->saved[e][1] = reg_read(a, IOREDTBL_FIRST + 2 * e + 1);
		}
		if (!mmio_trap_add(bases[i], 4096, PT_RO, ioapic_mmio, &ioapics[i]))
			LOG("ioapic: cannot trap the I/O APIC at %lx\n", bases[i]);
		else
			LOG("ioapic: %lx trapped for writes: no redirection entry delivers INIT\n", bases[i]);
	}
}
