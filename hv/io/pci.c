/*
 * PCI configuration space mediation: see pci.h and docs/io.md.
 *
 * Mechanism #1: the guest's 0xCF8 (CONFIG_ADDRESS) is kept in a shadow and never reaches the
 * hardware as such; each guest data-port access is performed by Parapet as one locked
 * address/data pair, the same way as Parapet's own accesses, so the two never interleave.
 */
#include "io/pci.h"
#include "vmm/io.h"
#include "mm/hvmem.h"
#include "core/log.h"
#include "core/spinlock.h"

#define CONFIG_ADDRESS 0xCF8
#define CONFIG_DATA 0xCFC
#define CF8_ENABLE 0x80000000u
#define CF8_MASK 0x80FFFFFCu /* enable, bus, device, function, register */

static struct pci_dev devs[PCI_DEVS_MAX];
static int16_t parent[PCI_DEVS_MAX];         /* index of the bridge above, or -1 on bus 0 */
static bool guard_bus_numbers[PCI_DEVS_MAX]; /* a bridge on the way to a bound device */
static unsigned ndevs;

static struct spinlock cfg_lock;     /* one address/data pair at a time */
static struct spinlock mediate_lock; /* one mediated guest write at a time */
static u32 cf8_shadow;
static struct {
	u64 base;
	u8 start, end;
	bool on;
} ecam;
struct pci_stats pci_stats;

extern const struct pci_driver *const __start_pci_drivers[], *const __stop_pci_drivers[];

/* ---- Raw access. ---- */

#ifdef HOST_TEST
u32 pci_ecam_hw(u64 pa, unsigned size, bool in, u32 val); /* the test's */
#else
static u32 pci_ecam_hw(u64 pa, unsigned size, bool in, u32 val)
{
	volatile void *p = phys_ptr(pa);
	if (in)
		return size == 1 ? *(volatile u8 *)p : size == 2 ? *(volatile u16 *)p : *(volatile u32 *)p;
	if (size == 1)
		*(volatile u8 *)p = (u8)val;
	else if (size == 2)
		*(volatile u16 *)p = (u16)val;
	else
		*(volatile u32 *)p = val;
	return 0;
}
#endif

static bool valid_access(u16 offset, unsigned size)
{
	return (size == 1 || size == 2 || size == 4) && offset < 4096 && ((offset & 3) + size <= 4);
}

static u32 raw(u8 bus, u8 devfn, u16 offset, unsigned size, bool in, u32 val)
{
	u32 ones = size == 4 ? 0xFFFFFFFFu : (1u << (8 * size)) - 1;
	if (!valid_access(offset, size))
		return ones;
	if (offset >= 256) {
		if (!ecam.on || bus < ecam.start || bus > ecam.end)
			return ones;
		return pci_ecam_hw(ecam.base + ((u64)bus << 20) + ((u64)devfn << 12) + offset, size, in, val) & ones;
	}
	spin_lock(&cfg_lock);
	io_port_hw(CONFIG_ADDRESS, 4, false, CF8_ENABLE | (u32)bus << 16 | (u32)devfn << 8 | (offset & 0xFC));
	u32 r = io_port_hw(CONFIG_DATA + (offset & 3), size, in, val);
	spin_unlock(&cfg_lock);
	return in ? r & ones : 0;
}

u32 pci_cfg_read(u8 bus, u8 devfn, u16 offset, unsigned size)
{
	return raw(bus, devfn, offset, size, true, 0);
}
void pci_cfg_write(u8 bus, u8 devfn, u16 offset, unsigned size, u32 val)
{
	raw(bus, devfn, offset, size, false, val);
}
u32 pci_read(const struct pci_dev *d, u16 offset, unsigned size)
{
	return pci_cfg_read(d->bus, d->devfn, offset, size);
}
void pci_write(const struct pci_dev *d, u16 offset, unsigned size, u32 val)
{
	pci_cfg_write(d->bus, d->devfn, offset, size, val);
}

void pci_set_ecam(u64 base, u8 bus_start, u8 bus_end)
{
	ecam.base = base;
	ecam.start = bus_start;
	ecam.end = bus_end;
	ecam.on = true;
}

u64 pci_bar_addr(const struct pci_dev *d, unsigned i)
{
	if (i >= d->nbars)
		return 0;
	u32 b = d->bar[i];
	if (b & 1)
		return b & 0xFFFC;
	u64 a = b & ~0xFull;
	if (((b >> 1) & 3) == 2 && i + 1 < d->nbars)
		a |= (u64)d->bar[i + 1] << 32;
	return a;
}

/* ---- Devices. ---- */

unsigned pci_devices(struct pci_dev **out)
{
	*out = devs;
	return ndevs;
}

static int find_index(u8 bus, u8 devfn)
{
	for (unsigned i = 0; i < ndevs; i++)
		if (devs[i].bus == bus && devs[i].devfn == devfn)
			return (int)i;
	return -1;
}

struct pci_dev *pci_find(u8 bus, u8 devfn)
{
	int i = find_index(bus, devfn);
	return i < 0 ? NULL : &devs[i];
}

static void reread(struct pci_dev *d)
{
	d->command = (u16)pci_read(d, PCI_COMMAND, 2);
	for (unsigned i = 0; i < d->nbars; i++)
		d->bar[i] = pci_read(d, PCI_BAR0 + 4 * i, 4);
}

/* Size the BARs of a device Parapet binds, with its decoding off meanwhile (before the guest
 * runs). A 64-bit BAR's size is stored on its low half. */
static void size_bars(struct pci_dev *d)
{
	u16 cmd = (u16)pci_read(d, PCI_COMMAND, 2);
	pci_write(d, PCI_COMMAND, 2, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
	for (unsigned i = 0; i < d->nbars; i++) {
		u16 off = PCI_BAR0 + 4 * i;
		u32 orig = pci_read(d, off, 4);
		pci_write(d, off, 4, 0xFFFFFFFF);
		u32 mask = pci_read(d, off, 4);
		pci_write(d, off, 4, orig);
		if (orig & 1) {
			u32 m = mask & 0xFFFFFFFC;
			d->bar_size[i] = m ? (u16)(~m + 1) : 0;
			continue;
		}
		u64 m = mask & ~0xFull;
		if (((orig >> 1) & 3) == 2 && i + 1 < d->nbars) {
			u32 orig_hi = pci_read(d, off + 4, 4);
			pci_write(d, off + 4, 4, 0xFFFFFFFF);
			m |= (u64)pci_read(d, off + 4, 4) << 32;
			pci_write(d, off + 4, 4, orig_hi);
			d->bar_size[i] = m ? ~m + 1 : 0;
			i++;
		} else {
			d->bar_size[i] = m ? (u32)(~(u32)m + 1) : 0;
		}
	}
	pci_write(d, PCI_COMMAND, 2, cmd);
}

static bool matches(const struct pci_driver *drv, const struct pci_dev *d)
{
	return (drv->vendor == PCI_ANY_ID || drv->vendor == d->vendor) &&
	       (drv->device == PCI_ANY_ID || drv->device == d->device) &&
	       (drv->class == 0xFF || drv->class == d->class) &&
	       (drv->subclass == 0xFF || drv->subclass == d->subclass);
}

static void add_device(u8 bus, u8 devfn, u32 id, int up)
{
	if (ndevs >= PCI_DEVS_MAX)
		return;
	struct pci_dev *d = &devs[ndevs];
	u32 cls = pci_cfg_read(bus, devfn, PCI_CLASS_REV, 4);
	*d = (struct pci_dev){
		.bus = bus,
		.devfn = devfn,
		.vendor = (u16)id,
		.device = (u16)(id >> 16),
		.class = (u8)(cls >> 24),
		.subclass = (u8)(cls >> 16),
		.progif = (u8)(cls >> 8),
		.header_type = (u8)(pci_cfg_read(bus, devfn, PCI_HEADER_TYPE, 1) & 0x7F),
	};
	d->nbars = d->header_type == 0 ? 6 : d->header_type == 1 ? 2 : 0;
	reread(d);
	parent[ndevs] = (int16_t)up;
	ndevs++;
}

/* Breadth-first from bus 0 through the bridges' secondary bus numbers, at most PCI_BUSES_MAX
 * buses and PCI_DEVS_MAX functions. */
static void enumerate(void)
{
	u8 queue[PCI_BUSES_MAX];
	int16_t queue_parent[PCI_BUSES_MAX];
	u8 seen[256 / 8] = { 1 };
	unsigned head = 0, tail = 0;
	queue[tail] = 0;
	queue_parent[tail++] = -1;
	while (head < tail) {
		u8 bus = queue[head];
		int up = queue_parent[head++];
		for (unsigned dev = 0; dev < 32; dev++) {
			unsigned nfn = 1;
			for (unsigned fn = 0; fn < nfn; fn++) {
				u8 devfn = (u8)(dev << 3 | fn);
				u32 id = pci_cfg_read(bus, devfn, PCI_VENDOR_ID, 4);
				if ((u16)id == 0xFFFF || (u16)id == 0)
					continue;
				u8 ht = (u8)pci_cfg_read(bus, devfn, PCI_HEADER_TYPE, 1);
				if (fn == 0 && (ht & 0x80))
					nfn = 8;
				int me = (int)ndevs;
				add_device(bus, devfn, id, up);
				u8 t = ht & 0x7F;
				if (me == (int)ndevs || (t != 1 && t != 2))
					continue;
				u8 sec = (u8)pci_cfg_read(bus, devfn, PCI_SECONDARY_BUS, 1);
				if (sec == 0 || (seen[sec / 8] & (1u << (sec % 8))) || tail >= PCI_BUSES_MAX)
					continue;
				seen[sec / 8] |= (u8)(1u << (sec % 8));
				queue[tail] = sec;
				queue_parent[tail++] = (int16_t)me;
			}
		}
	}
}

static void bind_drivers(bool reset)
{
	bool mediating = false;
	for (unsigned i = 0; i < ndevs; i++) {
		struct pci_dev *d = &devs[i];
		for (const struct pci_driver *const *p = __start_pci_drivers; p < __stop_pci_drivers; p++) {
			if (!*p || !matches(*p, d))
				continue;
			d->drv = *p;
			if (reset && (*p)->reset)
				(*p)->reset(d);
			size_bars(d);
			reread(d);
			if ((*p)->bind)
				(*p)->bind(d); /* may decline by clearing d->drv */
			break;
		}
		mediating |= d->drv && !d->drv->support;
	}
	for (unsigned i = 0; i < ndevs; i++) {
		struct pci_dev *d = &devs[i];
		if (d->drv && !mediating) {
			LOG("pci: %02x:%02x.%u %04x:%04x: %s not needed, nothing else is mediated\n", d->bus,
			    d->devfn >> 3, d->devfn & 7, d->vendor, d->device, d->drv->name);
			d->drv = NULL;
		}
		if (!d->drv)
			continue;
		LOG("pci: %02x:%02x.%u %04x:%04x class %02x%02x%02x bound to %s\n", d->bus, d->devfn >> 3, d->devfn & 7,
		    d->vendor, d->device, d->class, d->subclass, d->progif, d->drv->name);
		for (int up = parent[i]; up >= 0; up = parent[up])
			guard_bus_numbers[up] = true;
	}
}

/* ---- The guest's accesses. ---- */

u32 pci_guest_read(u8 bus, u8 devfn, u16 offset, unsigned size)
{
	__atomic_fetch_add(&pci_stats.data_reads, 1, __ATOMIC_RELAXED);
	u32 v = raw(bus, devfn, offset, size, true, 0);
	struct pci_dev *d = pci_find(bus, devfn);
	if (d && d->drv && d->drv->cfg_read)
		d->drv->cfg_read(d, offset, size, &v);
	return v;
}

static u32 drop_log_budget = 16;

static void dropped(const char *why, u8 bus, u8 devfn, u16 offset, unsigned size, u32 val)
{
	__atomic_fetch_add(&pci_stats.dropped_writes, 1, __ATOMIC_RELAXED);
	if (log_budget_take(&drop_log_budget))
		LOG("pci: guest write %02x:%02x.%u +%x/%u = %x dropped (%s)\n", bus, devfn >> 3, devfn & 7, offset,
		    size, val, why);
}

/* ---- Following BARs (see pci.h). ---- */

#define DECODE (PCI_COMMAND_IO | PCI_COMMAND_MEMORY)

static bool is_mem64(u32 bar)
{
	return !(bar & 1) && ((bar >> 1) & 3) == 2;
}

static void window(const struct pci_dev *d, unsigned i, u16 cmd, struct pci_window *w)
{
	*w = (struct pci_window){ 0 };
	if (i >= d->nbars || !d->bar_size[i])
		return; /* not implemented, or a 64-bit BAR's high half */
	u32 b = d->bar[i];
	w->io = b & 1;
	w->len = d->bar_size[i];
	w->base = w->io ? (b & ~3u) : pci_bar_addr(d, i);
	w->on = (cmd & (w->io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) && w->base != 0;
}

void pci_bar_window(const struct pci_dev *d, unsigned i, struct pci_window *w)
{
	window(d, i, d->command, w);
}

void pci_hold_decoding(struct pci_dev *d, u16 space)
{
	d->held |= space & DECODE;
}

static bool moved(const struct pci_window *a, const struct pci_window *b)
{
	return a->on != b->on || (a->on && (a->io != b->io || a->base != b->base || a->len != b->len));
}

/* The space the BAR register at index i decodes (a 64-bit BAR's high half: memory). */
static u16 bar_space(const struct pci_dev *d, unsigned i)
{
	if (i > 0 && d->bar_size[i - 1] && is_mem64(d->bar[i - 1]))
		return PCI_COMMAND_MEMORY;
	return (d->bar[i] & 1) ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
}

static u32 refuse_log_budget = 16;

/* After a landed write: tell the driver of each window that changed; undo what it refuses. The
 * decoding the guest asked for is *want (a refused turn-on is taken out of it). */
static void follow_bars(struct pci_dev *d, const struct pci_window *before, const u32 *old_bar, u16 *want)
{
	bool restored = false;
	for (unsigned i = 0; i < d->nbars; i++) {
		struct pci_window now;
		window(d, i, *want, &now);
		if (!moved(&before[i], &now) || d->drv->bar_moved(d, i, &before[i], &now) || !now.on)
			continue;
		bool wide = is_mem64(d->bar[i]) && i + 1 < d->nbars;
		bool bar_changed = d->bar[i] != old_bar[i] || (wide && d->bar[i + 1] != old_bar[i + 1]);
		if (bar_changed) {
			pci_write(d, PCI_BAR0 + 4 * i, 4, old_bar[i]);
			if (wide)
				pci_write(d, PCI_BAR0 + 4 * (i + 1), 4, old_bar[i + 1]);
			restored = true;
		} else {
			*want &= (u16) ~(now.io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY);
		}
		if (log_budget_take(&refuse_log_budget))
			LOG("pci: %02x:%02x.%u BAR%u: %s window at %lx (+%lx) refused by %s; %s\n", d->bus,
			    d->devfn >> 3, d->devfn & 7, i, now.io ? "I/O" : "memory", now.base, now.len, d->drv->name,
			    bar_changed ? "BAR restored" : "decoding left off");
	}
	if (restored)
		reread(d);
}

void pci_guest_write(u8 bus, u8 devfn, u16 offset, unsigned size, u32 val)
{
	__atomic_fetch_add(&pci_stats.data_writes, 1, __ATOMIC_RELAXED);
	int i = find_index(bus, devfn);
	if (i < 0 || (!devs[i].drv && !guard_bus_numbers[i])) {
		raw(bus, devfn, offset, size, false, val);
		return;
	}
	struct pci_dev *d = &devs[i];
	if (!d->drv) {
		/* A bridge above a bound device: its bus numbers stay, so the device keeps its address. */
		if (offset < PCI_PRIMARY_BUS + 3 && offset + size > PCI_PRIMARY_BUS)
			dropped("bus numbers of a bridge above a mediated device", bus, devfn, offset, size, val);
		else
			raw(bus, devfn, offset, size, false, val);
		return;
	}
	__atomic_fetch_add(&pci_stats.mediated_writes, 1, __ATOMIC_RELAXED);
	spin_lock(&mediate_lock);
	d->held = 0;
	if (d->drv->cfg_write && !d->drv->cfg_write(d, offset, size, &val)) {
		spin_unlock(&mediate_lock);
		dropped(d->drv->name, bus, devfn, offset, size, val);
		return;
	}
	u16 cmd = d->command, want = cmd;
	bool follow = d->drv->bar_moved != NULL && valid_access(offset, size);
	struct pci_window before[6];
	u32 old_bar[6];
	if (offset <= PCI_COMMAND && offset + size > PCI_COMMAND) {
		u32 w = offset == PCI_COMMAND ? val : val >> (8 * (PCI_COMMAND - offset));
		want = (u16)((cmd & ~DECODE) | (w & DECODE));
		if (follow)
			d->held |= want & ~cmd & DECODE; /* turned on only once the driver traps it */
	}
	if (follow) {
		for (unsigned b = 0; b < d->nbars; b++) {
			window(d, b, cmd, &before[b]);
			old_bar[b] = d->bar[b];
			if (offset < PCI_BAR0 + 4 * (b + 1) && offset + size > PCI_BAR0 + 4 * b)
				d->held |= bar_space(d, b);
		}
	}
	if (cmd & d->held)
		pci_write(d, PCI_COMMAND, 2, cmd & ~d->held);
	u32 land = val;
	if (offset <= PCI_COMMAND && offset + size > PCI_COMMAND)
		land &= ~((u32)d->held << (8 * (PCI_COMMAND - offset)));
	raw(bus, devfn, offset, size, false, land);
	reread(d);
	want &= DECODE;
	if (follow)
		follow_bars(d, before, old_bar, &want);
	if (d->drv->cfg_written)
		d->drv->cfg_written(d, offset, size);
	if (d->held) {
		/* The decoding the guest asked for, less what a refusal keeps off. */
		u16 fin = (u16)((d->command & ~DECODE) | want);
		if (fin != d->command) {
			pci_write(d, PCI_COMMAND, 2, fin);
			d->command = (u16)pci_read(d, PCI_COMMAND, 2);
		}
		d->held = 0;
	}
	spin_unlock(&mediate_lock);
}

/* ---- Regions. ---- */

/* A memory window a driver may trap: above 1 MiB and on nothing the guest's map lists but
 * reserved ranges (the rest the trap table checks: Parapet's region, the nested tables). */
static bool mem_placeable(u64 base, u64 end)
{
	if (base < MiB(1) || end <= base)
		return false;
	const struct memmap *m = &hvmem.guest_map;
	for (u32 i = 0; i < m->n; i++)
		if (m->e[i].type != E820_RESERVED && base < m->e[i].base + m->e[i].len && m->e[i].base < end)
			return false;
	return true;
}

void pci_region_remove(struct pci_region *r)
{
	if (!r->placed)
		return;
	if (r->io)
		io_hook_remove(r->handle);
	else
		mmio_region_remove(r->handle);
	r->placed = false;
}

bool pci_region_place(struct pci_region *r, const struct pci_window *w)
{
	if (!w->on) {
		pci_region_remove(r);
		return true;
	}
	u64 len = r->len ? r->len : w->len, base = w->base + r->offset;
	if (w->io != r->io || len == 0 || (r->len && r->offset + r->len > w->len) || base < w->base)
		return false;
	if (r->io) {
		if (base + len > 0x10000)
			return false;
		if (r->placed && len == r->size) {
			if (!io_hook_move(r->handle, (u16)base))
				return false;
		} else {
			int h = io_hook_add((u16)base, (u16)len, r->port, r->port_str, r->ctx);
			if (h < 0)
				return false;
			pci_region_remove(r);
			r->handle = h;
		}
	} else {
		u64 lo = base & ~0xFFFull, hi = (base + len + 0xFFF) & ~0xFFFull;
		if (base + len < base || hi < lo || !mem_placeable(lo, hi))
			return false;
		enum pt_access a = r->access == PT_RO ? PT_RO : PT_NONE;
		u64 cur_lo = r->base & ~0xFFFull, cur_hi = (r->base + r->size + 0xFFF) & ~0xFFFull;
		if (r->placed && hi - lo == cur_hi - cur_lo) {
			if (!mmio_region_move(r->handle, lo))
				return false;
		} else {
			/* A new size: the new pages trapped before the old ones are released. */
			int h = mmio_region_add(lo, hi - lo, a, r->mem, r->ctx);
			if (h < 0)
				return false;
			pci_region_remove(r);
			r->handle = h;
		}
	}
	r->placed = true;
	r->base = base;
	r->size = len;
	return true;
}

static bool cfg_mediated; /* a driver is bound: configuration cycles are Parapet's */
static u32 hw_ports(u16 port, unsigned size, bool in, u32 val)
{
	return io_port_hw(port, size, in, val);
}
static u32 (*other_ports)(u16 port, unsigned size, bool in, u32 val) = hw_ports;

void pci_set_other_ports(u32 (*fn)(u16 port, unsigned size, bool in, u32 val))
{
	other_ports = fn;
}

/* Port 0xCF8-0xCFB: the dword at 0xCF8 is CONFIG_ADDRESS (shadowed); narrower accesses there
 * are other registers (0xCF9: reset control) and go to the hardware. */
static u32 address_port(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	(void)ctx;
	if (port != CONFIG_ADDRESS || size != 4)
		return other_ports(port, size, in, val);
	if (!cfg_mediated)
		return io_port_hw(port, size, in, val);
	if (in)
		return __atomic_load_n(&cf8_shadow, __ATOMIC_RELAXED);
	__atomic_fetch_add(&pci_stats.addr_writes, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&cf8_shadow, val & CF8_MASK, __ATOMIC_RELAXED);
	return 0;
}

/* Port 0xCFC-0xCFF: CONFIG_DATA at the register the shadow names. */
static u32 data_port(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	(void)ctx;
	u32 a = __atomic_load_n(&cf8_shadow, __ATOMIC_RELAXED);
	if (!(a & CF8_ENABLE)) {
		/* Not a configuration cycle: plain I/O, with the hardware's address register off too. */
		spin_lock(&cfg_lock);
		io_port_hw(CONFIG_ADDRESS, 4, false, a);
		u32 r = io_port_hw(port, size, in, val);
		spin_unlock(&cfg_lock);
		return r;
	}
	u8 bus = (u8)(a >> 16), devfn = (u8)(a >> 8);
	u16 offset = (u16)((a & 0xFC) + (port - CONFIG_DATA));
	if (in)
		return pci_guest_read(bus, devfn, offset, size);
	pci_guest_write(bus, devfn, offset, size, val);
	return 0;
}

unsigned pci_dma_stop(u16 *saved, unsigned max)
{
	unsigned n = ndevs < max ? ndevs : max;
	for (unsigned i = 0; i < n; i++) {
		saved[i] = (u16)pci_read(&devs[i], PCI_COMMAND, 2);
		if (saved[i] != 0xFFFF && (saved[i] & PCI_COMMAND_MASTER))
			pci_write(&devs[i], PCI_COMMAND, 2, saved[i] & ~PCI_COMMAND_MASTER);
	}
	return n;
}

void pci_dma_restore(const u16 *saved, unsigned n)
{
	for (unsigned i = 0; i < n && i < ndevs; i++)
		if (saved[i] != 0xFFFF && (saved[i] & PCI_COMMAND_MASTER))
			pci_write(&devs[i], PCI_COMMAND, 2, saved[i]);
}

static bool any_bound(void)
{
	for (unsigned i = 0; i < ndevs; i++)
		if (devs[i].drv)
			return true;
	return false;
}

void pci_init(bool reset)
{
	enumerate();
	LOG("pci: %u functions found\n", ndevs);
	bind_drivers(reset);
	/* 0xCF8-0xCFB always (0xCF9 resets the machine: power/power.c); with nothing to mediate,
	 * CONFIG_ADDRESS goes to the hardware and CONFIG_DATA costs no exit. */
	cfg_mediated = any_bound();
	if (io_hook_add(CONFIG_ADDRESS, 4, address_port, NULL, NULL) < 0 ||
	    (cfg_mediated && io_hook_add(CONFIG_DATA, 4, data_port, NULL, NULL) < 0))
		LOG("pci: cannot hook the configuration ports\n");
}

u64 pci_mmio_floor(void)
{
	u64 floor = PCI_MMIO_CEILING;
	if (ecam.on && ecam.base < floor)
		floor = ecam.base + ((u64)ecam.start << 20);
	for (unsigned i = 0; i < ndevs; i++)
		for (unsigned b = 0; b < devs[i].nbars; b++) {
			u64 a = pci_bar_addr(&devs[i], b);
			if (!pci_bar_is_io(devs[i].bar[b]) && a && a < floor)
				floor = a;
		}
	return floor;
}
