/*
 * QEMU fw_cfg: keep Parapet's boot files (kernel, modules with the policy record, command line)
 * out of the guest's reach, and keep the device's DMA engine out of Parapet's memory.
 * See fwcfg.h and docs/io.md.
 *
 * The device's selection is the only state that decides what the data port and DMA read; every
 * path that changes it (the selector port, a DMA SELECT) passes through here, and it is reset at
 * init, so it never holds a blocked key. The DMA address register is Parapet's alone: the guest's
 * writes to it are absorbed, and the device only ever gets the address of a checked private copy
 * of the guest's descriptor (no double fetch).
 */
#include "drivers/fwcfg/fwcfg.h"
#include "vmm/gmem.h"
#include "vmm/io.h"
#include "core/log.h"
#include "core/panic.h"
#include "core/pgalloc.h"
#include "core/spinlock.h"
#include "core/string.h"

#ifdef HOST_TEST
u32 (*fwcfg_hw)(u16 port, unsigned size, bool in, u32 val) = io_port_hw;
#else
#define fwcfg_hw io_port_hw
#endif

struct fwcfg_stats fwcfg_stats;
static struct spinlock lock;            /* the selection, the DMA register, priv, the counters */
static volatile struct fwcfg_dma *priv; /* the descriptor the device reads: in Parapet's memory */
static u64 priv_pa;
static u32 dma_high; /* the guest's high half of the DMA address, as written */
static u32 log_budget = 16;

static u32 be32(u32 v)
{
	return __builtin_bswap32(v);
}
static u64 be64(u64 v)
{
	return __builtin_bswap64(v);
}

bool fwcfg_key_blocked(u16 key)
{
	u16 e = key & FWCFG_KEY_ENTRY_MASK;
	return (e >= FWCFG_KEY_KERNEL_ADDR && e <= FWCFG_KEY_INITRD_SIZE) ||
	       (e >= FWCFG_KEY_KERNEL_ENTRY && e <= FWCFG_KEY_SETUP_DATA);
}

enum fwcfg_verdict fwcfg_dma_check(struct fwcfg_dma *d)
{
	u32 control = be32(d->control), length = be32(d->length);
	/* As the device decides: READ, else WRITE, else SKIP (no memory), else nothing. */
	if ((control & (FWCFG_DMA_READ | FWCFG_DMA_WRITE)) && length && !gmem_map(be64(d->address), length))
		return FWCFG_DMA_REFUSED;
	if ((control & FWCFG_DMA_SELECT) && fwcfg_key_blocked((u16)(control >> 16))) {
		d->control = be32((u32)FWCFG_KEY_INVALID << 16 | (control & 0xFFFF));
		return FWCFG_DMA_SELECT_BLOCKED;
	}
	return FWCFG_DMA_PASS;
}

/* Selector and data ports. Only a 16-bit write to 0x510 selects (a byte write to either port is
 * a data write, which the device ignores); reads are data. */
static u32 sel_port(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	(void)ctx;
	if (in || port != FWCFG_PORT_SEL || size != 2)
		return fwcfg_hw(port, size, in, val);
	spin_lock(&lock);
	if (fwcfg_key_blocked((u16)val)) {
		u32 n = ++fwcfg_stats.selects_blocked;
		if (log_budget_take(&log_budget))
			LOG("fwcfg: select of key %x blocked (%u so far)\n", val & 0xFFFF, n);
		val = FWCFG_KEY_INVALID;
	}
	fwcfg_hw(FWCFG_PORT_SEL, 2, false, val);
	spin_unlock(&lock);
	return 0;
}

/* One transfer for the descriptor at guest-physical gpa. Called with the lock held. */
static void dma_run(u64 gpa)
{
	u32 *gctl = gmem_map(gpa, sizeof(struct fwcfg_dma));
	if (!gctl) {
		u32 n = ++fwcfg_stats.dma_refused;
		if (log_budget_take(&log_budget))
			LOG("fwcfg: DMA refused (%u so far): descriptor %lx not in guest RAM\n", n, gpa);
		return;
	}
	struct fwcfg_dma d;
	memcpy(&d, gctl, sizeof(d)); /* the one read: another CPU may be rewriting it */
	__asm__ volatile("" ::: "memory");
	enum fwcfg_verdict v = fwcfg_dma_check(&d);
	if (v == FWCFG_DMA_REFUSED) {
		u32 n = ++fwcfg_stats.dma_refused;
		if (log_budget_take(&log_budget))
			LOG("fwcfg: DMA refused (%u so far): control %x, data %lx+%x not guest RAM\n", n,
			    be32(d.control), be64(d.address), be32(d.length));
		__atomic_store_n(gctl, be32(FWCFG_DMA_ERROR), __ATOMIC_RELAXED);
		return;
	}
	if (v == FWCFG_DMA_SELECT_BLOCKED) {
		u32 n = ++fwcfg_stats.dma_blocked;
		if (log_budget_take(&log_budget))
			LOG("fwcfg: DMA select of a blocked key replaced (%u so far)\n", n);
	}
	fwcfg_stats.dma++;
	priv->control = d.control;
	priv->length = d.length;
	priv->address = d.address;
	fwcfg_hw(FWCFG_PORT_DMA, 4, false, be32((u32)(priv_pa >> 32)));
	fwcfg_hw(FWCFG_PORT_DMA + 4, 4, false, be32((u32)priv_pa)); /* QEMU runs it here */
	__atomic_store_n(gctl, priv->control, __ATOMIC_RELAXED);
}

/* The DMA address register: dword writes at 0x514 (high) and 0x518 (low, starts the transfer);
 * the device ignores every other write, and so does Parapet. Reads give the signature. */
static u32 dma_port(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	(void)ctx;
	if (in)
		return fwcfg_hw(port, size, in, val);
	if (size != 4 || (port != FWCFG_PORT_DMA && port != FWCFG_PORT_DMA + 4))
		return 0;
	spin_lock(&lock);
	if (port == FWCFG_PORT_DMA) {
		dma_high = val;
	} else {
		u64 gpa = (u64)be32(dma_high) << 32 | be32(val);
		dma_high = 0; /* the device, too, clears its register per transfer */
		dma_run(gpa);
	}
	spin_unlock(&lock);
	return 0;
}

void fwcfg_init(void)
{
	char sig[4];
	fwcfg_hw(FWCFG_PORT_SEL, 2, false, FWCFG_KEY_SIGNATURE);
	for (unsigned i = 0; i < 4; i++)
		sig[i] = (char)fwcfg_hw(FWCFG_PORT_DATA, 1, true, 0);
	if (memcmp(sig, "QEMU", 4) != 0) {
		LOG("fwcfg: no device\n");
		return;
	}
	u32 id = 0;
	fwcfg_hw(FWCFG_PORT_SEL, 2, false, FWCFG_KEY_ID);
	for (unsigned i = 0; i < 4; i++)
		id |= (fwcfg_hw(FWCFG_PORT_DATA, 1, true, 0) & 0xFF) << (8 * i);
	/* The firmware may have left a boot file selected part-way (QEMU's multiboot ROM does). */
	fwcfg_hw(FWCFG_PORT_SEL, 2, false, FWCFG_KEY_INVALID);
	priv_pa = pgalloc(1);
	priv = phys_ptr(priv_pa);
	if (io_hook_add(FWCFG_PORT_SEL, 2, sel_port, NULL, NULL) < 0 ||
	    io_hook_add(FWCFG_PORT_DMA, FWCFG_DMA_PORTS, dma_port, NULL, NULL) < 0)
		panic("fwcfg: ports already hooked"); /* never leave the device unmediated */
	LOG("fwcfg: device found (id %x), ports %x-%x and %x-%x mediated, boot files hidden\n", id, FWCFG_PORT_SEL,
	    FWCFG_PORT_DATA, FWCFG_PORT_DMA, FWCFG_PORT_DMA + FWCFG_DMA_PORTS - 1);
}
