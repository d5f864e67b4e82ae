/*
 * AMD-Vi DMA remapping (AMD I/O Virtualization Technology (IOMMU) Specification #48882, rev. 3):
 * one device table for the 65536 device IDs of PCI segment 0, shared by every IOMMU (§2.2.2),
 * every entry valid and blocking until a requester is attached; invalidation through each
 * unit's command buffer (§2.4) with a completion-wait store; the event log polled (§2.5).
 * No interrupts (EventIntEn, ComWaitIntEn off); interrupt remapping left off (DTE IV = 0).
 */
#include "iommu/amdvi.h"
#include "iommu/ivrs.h"
#include "io/pci.h"
#include "core/log.h"
#include "core/pgalloc.h"
#include "core/string.h"
#include "core/x86.h"

#define RING_LOG2 8 /* 256 entries of 16 bytes: one page each */
#define RING_BYTES (16u << RING_LOG2)
#define RING_MASK (RING_BYTES - 16)
#define WAIT_LOOPS 10000000u

static const struct pt_format amdvi_fmt = AMDVI_PT_FORMAT;

static struct ivrs_info ivrs;
static struct unit {
	u64 cmd_pa, evt_pa;
	u32 tail, head; /* next command slot; the head last read */
	u64 efr;
} units[IOMMU_UNITS_MAX];
static u64 devtab_pa, sem_pa, seq;
static u8 dirty[DTE_ENTRIES / 8];   /* entries changed since the last flush */
static u8 domains[DTE_ENTRIES / 8]; /* domain IDs ever attached */

static volatile u64 *reg(unsigned u, u32 off)
{
	return phys_ptr(ivrs.units[u].base + off);
}
static u64 *dte(u16 devid)
{
	return (u64 *)phys_ptr(devtab_pa) + 4 * devid;
}

/* Make the queued commands visible to unit u: the tail register (§3.4). */
static void submit(unsigned u)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*reg(u, AMDVI_CMD_TAIL) = units[u].tail;
}

/* Queue one command; when the ring is full, submit and wait (bounded) for room. */
static bool queue(unsigned u, struct amdvi_cmd c)
{
	struct unit *x = &units[u];
	u32 next = (x->tail + 16) & RING_MASK;
	if (next == x->head) {
		submit(u);
		for (u32 i = 0; next == (x->head = (u32)*reg(u, AMDVI_CMD_HEAD) & RING_MASK); i++) {
			if (i == WAIT_LOOPS) {
				LOG("amdvi: unit %u: command buffer does not drain\n", u);
				return false;
			}
			cpu_relax();
		}
	}
	memcpy((u8 *)phys_ptr(x->cmd_pa) + x->tail, &c, sizeof(c));
	x->tail = next;
	return true;
}

/* Submit, then COMPLETION_WAIT storing a fresh value to unit u's semaphore (§2.4.1). */
static bool sync(unsigned u)
{
	volatile u64 *sem = (volatile u64 *)phys_ptr(sem_pa) + u;
	u64 v = ++seq;
	if (!queue(u, amdvi_completion_wait(sem_pa + 8 * u, v)))
		return false;
	submit(u);
	for (u32 i = 0; i < WAIT_LOOPS; i++) {
		if (*sem == v)
			return true;
		cpu_relax();
	}
	LOG("amdvi: unit %u: completion wait timed out (status %lx)\n", u, *reg(u, AMDVI_STATUS));
	return false;
}

/* Invalidate the changed device table entries (all of them with `all`) and every attached
 * domain's cached translations in every unit. */
static bool invalidate(bool all)
{
	bool ok = true;
	for (unsigned u = 0; u < ivrs.nunits; u++) {
		bool ia = all && (units[u].efr & EFR_IA_SUP);
		if (ia)
			ok &= queue(u, (struct amdvi_cmd){ { CMD_OP(CMD_INV_IOMMU_ALL), 0 } });
		for (u32 id = 0; id < DTE_ENTRIES && !ia && ok; id++) {
			if ((all || (dirty[id / 8] >> (id % 8) & 1)))
				ok &= queue(u, amdvi_inv_dte((u16)id));
			if (domains[id / 8] >> (id % 8) & 1)
				ok &= queue(u, amdvi_inv_pages((u16)id));
		}
		ok = ok && sync(u);
	}
	memset(dirty, 0, sizeof(dirty));
	return ok;
}

static bool probe(acpi_map_fn map, u64 table, struct iommu_hw *hw)
{
	u32 len;
	const u8 *t = acpi_table(map, table, &len);
	const char *err = t ? ivrs_parse(t, len, &ivrs) : "table unreadable";
	if (err) {
		LOG("amdvi: IVRS refused: %s\n", err);
		return false;
	}
	for (unsigned u = 0; u < ivrs.nunits; u++) {
		if (ivrs.units[u].segment) {
			LOG("amdvi: IOMMU at %lx serves PCI segment %u; Parapet handles segment 0 only\n",
			    ivrs.units[u].base, ivrs.units[u].segment);
			return false;
		}
		u64 efr = *reg(u, AMDVI_EFR);
		if (efr == ~0ull) {
			LOG("amdvi: no registers at %lx\n", ivrs.units[u].base);
			return false;
		}
		units[u].efr = efr;
		LOG("amdvi: unit %u at %lx: IVHD type %x, device %02x:%02x.%u, EFR %lx\n", u, ivrs.units[u].base,
		    ivrs.units[u].type, ivrs.units[u].devid >> 8, (ivrs.units[u].devid >> 3) & 31,
		    ivrs.units[u].devid & 7, efr);
		hw->regs[hw->nregs].base = ivrs.units[u].base;
		hw->regs[hw->nregs++].len = efr & EFR_PC_SUP ? AMDVI_REGS_LEN_PC : AMDVI_REGS_LEN;
	}
	hw->fmt = &amdvi_fmt;
	hw->max_shift = PAGE_2M;
	for (unsigned i = 0; i < ivrs.nfixed; i++) {
		hw->fixed[hw->nfixed].base = ivrs.fixed[i].base;
		hw->fixed[hw->nfixed++].end = ivrs.fixed[i].end;
	}

	/* The device table base register takes a 4 KiB-aligned address (bits 51:12, §3.3.1). */
	sem_pa = pgalloc(1);
	for (unsigned u = 0; u < ivrs.nunits; u++) {
		units[u].cmd_pa = pgalloc(1);
		units[u].evt_pa = pgalloc(1);
	}
	devtab_pa = pgalloc(DTE_ENTRIES * DTE_BYTES / PAGE_SIZE);
	for (u32 id = 0; id < DTE_ENTRIES; id++)
		amdvi_dte(dte((u16)id), 0, 0);
	return true;
}

static bool attach(u16 rid, const struct dma_domain *d)
{
	u64 e[4], *live = dte(rid);
	amdvi_dte(e, d->root, d->id);
	/* Blocked while it changes: the unit may read the 256 bits at any moment (the caller flushes). */
	__atomic_store_n(&live[0], DTE_V | DTE_TV, __ATOMIC_SEQ_CST);
	__atomic_store_n(&live[1], e[1], __ATOMIC_SEQ_CST);
	__atomic_store_n(&live[0], e[0], __ATOMIC_SEQ_CST);
	dirty[rid / 8] |= (u8)(1u << (rid % 8));
	domains[d->id / 8] |= (u8)(1u << (d->id % 8));
	return true;
}

static void flush(void)
{
	invalidate(false);
}

static bool enable(void)
{
	for (unsigned u = 0; u < ivrs.nunits; u++) {
		/* Off first: firmware may have left it on, and the bases may change only while off. */
		*reg(u, AMDVI_CONTROL) = 0;
		*reg(u, AMDVI_EXCL_BASE) = 0; /* no exclusion range: every DMA is translated */
		*reg(u, AMDVI_EXCL_LIMIT) = 0;
		*reg(u, AMDVI_DEV_TABLE) = devtab_pa | (DTE_ENTRIES * DTE_BYTES / PAGE_SIZE - 1);
		*reg(u, AMDVI_CMD_BUF) = units[u].cmd_pa | AMDVI_RING_LEN(RING_LOG2);
		*reg(u, AMDVI_CMD_HEAD) = 0;
		*reg(u, AMDVI_CMD_TAIL) = 0;
		units[u].tail = units[u].head = 0;
		*reg(u, AMDVI_EVT_LOG) = units[u].evt_pa | AMDVI_RING_LEN(RING_LOG2);
		*reg(u, AMDVI_EVT_HEAD) = 0;
		*reg(u, AMDVI_EVT_TAIL) = 0;
		*reg(u, AMDVI_STATUS) = STATUS_EVT_OVERFLOW;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		*reg(u, AMDVI_CONTROL) = CTRL_IOMMU_EN | CTRL_EVT_LOG_EN | CTRL_CMD_BUF_EN | CTRL_COHERENT;
	}
	/* Whatever the units cached before (firmware's tables) goes. */
	return invalidate(true);
}

/* Collect the event log (§2.5): each event goes to iommu_fault with its code as the reason
 * (2: IO_PAGE_FAULT; 1, 3, 4: a bad device or page table entry; 5, 6: a command error). */
static void poll(void)
{
	static u32 budget = 4;
	for (unsigned u = 0; u < ivrs.nunits; u++) {
		const struct amdvi_event *log = phys_ptr(units[u].evt_pa);
		u32 head = (u32)*reg(u, AMDVI_EVT_HEAD) & RING_MASK, tail = (u32)*reg(u, AMDVI_EVT_TAIL) & RING_MASK;
		if (head != tail) {
			for (; head != tail; head = (head + 16) & RING_MASK) {
				struct amdvi_event e = log[head / 16];
				iommu_fault(amdvi_event_devid(&e), e.q[1], amdvi_event_write(&e), amdvi_event_code(&e));
			}
			*reg(u, AMDVI_EVT_HEAD) = head;
		}
		if (*reg(u, AMDVI_STATUS) & STATUS_EVT_OVERFLOW) {
			/* Logging stopped: restart it on an empty log. */
			if (log_budget_take(&budget))
				LOG("amdvi: unit %u: event log overflowed; events were lost\n", u);
			u64 ctl = *reg(u, AMDVI_CONTROL);
			*reg(u, AMDVI_CONTROL) = ctl & ~CTRL_EVT_LOG_EN;
			*reg(u, AMDVI_EVT_HEAD) = 0;
			*reg(u, AMDVI_EVT_TAIL) = 0;
			*reg(u, AMDVI_STATUS) = STATUS_EVT_OVERFLOW;
			*reg(u, AMDVI_CONTROL) = ctl;
		}
	}
}

const struct iommu_ops amdvi_ops = {
	.name = "AMD-Vi",
	.sig = "IVRS",
	.probe = probe,
	.attach = attach,
	.enable = enable,
	.flush = flush,
	.poll = poll,
};

/*
 * The IOMMU is also a PCI function (class 08h, subclass 06h) whose IOMMU capability block
 * (ID 0Fh, §3.2) holds the register base and its enable bit. While Parapet owns the IOMMU the
 * guest may not write that block (nor anything, if the block cannot be found), nor clear the
 * function's memory or bus-master enable; other writes (BAR sizing, MSI) pass.
 */
#define CAP_ID_IOMMU 0x0F
#define CAP_LEN 0x18

static void amdvi_fn_bind(struct pci_dev *d)
{
	u8 off = (u8)pci_read(d, 0x34, 1);
	for (unsigned n = 0; n < 48 && off >= 0x40 && (u8)pci_read(d, off, 1) != CAP_ID_IOMMU; n++)
		off = (u8)pci_read(d, off + 1, 1);
	d->priv = (void *)(uintptr_t)((u8)pci_read(d, off, 1) == CAP_ID_IOMMU && off >= 0x40 ? off : 0);
	if (!iommu_active())
		d->drv = NULL;
}

static bool amdvi_fn_write(struct pci_dev *d, u16 offset, unsigned size, u32 *val)
{
	u16 cap = (u16)(uintptr_t)d->priv;
	if (!cap || (offset < cap + CAP_LEN && offset + size > cap))
		return false;
	if (offset <= PCI_COMMAND && offset + size > PCI_COMMAND)
		*val |= (u32)(d->command & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) << (8 * (PCI_COMMAND - offset));
	return true;
}

static const struct pci_driver amdvi_fn_driver = {
	.name = "amd-iommu",
	.vendor = 0x1022,
	.device = PCI_ANY_ID,
	.class = 0x08,
	.subclass = 0x06,
	.bind = amdvi_fn_bind,
	.cfg_write = amdvi_fn_write,
};
PCI_DRIVER(amdvi_fn_driver);
