/* PCI configuration mediation on a fake machine: enumeration through a bridge, driver binding,
 * the guest's 0xCF8 shadow, writes through the driver, BAR tracking and sizing, bridge bus
 * numbers, and the ACPI MCFG / q35 PCIEXBAR decoding used to find ECAM. */
#include "test.h"
#include "io/pci.h"
#include "io/acpi.h"
#include "io/ecam.h"
#include "mm/hvmem.h"
#include "vmm/io.h"
#include <string.h>

struct hv_memory hvmem; /* io/ecam.c refers to it; not used by these tests */
const void *hvmem_outside(u64 pa, u64 len)
{
	(void)pa, (void)len;
	return NULL;
}

/* ---- A fake machine: configuration space behind mechanism #1, and other ports. ---- */

struct fdev {
	u8 bus, devfn;
	u8 cfg[256];
	u32 bar_size[6]; /* 0: not implemented */
};

static struct fdev fdevs[6];
static unsigned nfdevs;
static u32 cf8;
u16 fake_hw_port;
unsigned fake_hw_size;
static unsigned hw_cfg_writes;

static struct fdev *fdev_at(u8 bus, u8 devfn)
{
	for (unsigned i = 0; i < nfdevs; i++)
		if (fdevs[i].bus == bus && fdevs[i].devfn == devfn)
			return &fdevs[i];
	return NULL;
}

static void cfg_store(struct fdev *d, unsigned off, u8 v)
{
	if (off < 4 || (off >= 8 && off < 0x0C) || off == 0x0E)
		return; /* read-only ids, class, header type */
	if (off >= 0x10 && off < 0x28 && (d->cfg[0x0E] & 0x7F) == 0) {
		unsigned i = (off - 0x10) / 4, k = off & 3;
		u32 size = d->bar_size[i];
		if (!size)
			return;
		u32 cur, type;
		memcpy(&cur, &d->cfg[0x10 + 4 * i], 4);
		if (size == 1) { /* the high half of a 64-bit BAR */
			cur = (cur & ~(0xFFu << (8 * k))) | ((u32)v << (8 * k));
			memcpy(&d->cfg[0x10 + 4 * i], &cur, 4);
			return;
		}
		type = (cur & 1) ? 1 : (cur & 0xF);
		u32 nv = (cur & ~(0xFFu << (8 * k))) | ((u32)v << (8 * k));
		nv = (nv & ~(size - 1)) | type;
		memcpy(&d->cfg[0x10 + 4 * i], &nv, 4);
		return;
	}
	d->cfg[off] = v;
}

u32 io_port_hw(u16 port, unsigned size, bool in, u32 val)
{
	if (port == 0xCF8 && size == 4) {
		if (in)
			return cf8;
		cf8 = val;
		return 0;
	}
	if (port >= 0xCFC && port <= 0xCFF) {
		struct fdev *d = (cf8 & 0x80000000u) ? fdev_at((u8)(cf8 >> 16), (u8)(cf8 >> 8)) : NULL;
		unsigned off = (cf8 & 0xFC) + (port - 0xCFC);
		if (!d)
			return in ? 0xFFFFFFFF : 0;
		if (in) {
			u32 v = 0;
			memcpy(&v, &d->cfg[off], size);
			return v;
		}
		hw_cfg_writes++;
		for (unsigned k = 0; k < size; k++)
			cfg_store(d, off + k, (u8)(val >> (8 * k)));
		return 0;
	}
	fake_hw_port = port;
	fake_hw_size = size;
	return in ? 0x5A5A5A5A : 0;
}

u32 pci_ecam_hw(u64 pa, unsigned size, bool in, u32 val)
{
	(void)pa, (void)size, (void)val;
	return in ? 0xFFFFFFFF : 0;
}

static struct fdev *add_fdev(u8 bus, u8 devfn, u16 ven, u16 dev, u32 class_rev, u8 ht)
{
	struct fdev *d = &fdevs[nfdevs++];
	memset(d, 0, sizeof(*d));
	d->bus = bus, d->devfn = devfn;
	memcpy(&d->cfg[0], &ven, 2);
	memcpy(&d->cfg[2], &dev, 2);
	memcpy(&d->cfg[8], &class_rev, 4);
	d->cfg[0x0E] = ht;
	return d;
}

static void set_bar(struct fdev *d, unsigned i, u32 val, u32 size)
{
	memcpy(&d->cfg[0x10 + 4 * i], &val, 4);
	d->bar_size[i] = size;
}

static void build_machine(void)
{
	nfdevs = 0;
	add_fdev(0, 0x00, 0x8086, 0x1237, 0x06000002, 0);                   /* host bridge */
	struct fdev *br = add_fdev(0, 0x08, 0x1234, 0x0001, 0x06040000, 1); /* PCI bridge to bus 1 */
	br->cfg[0x18] = 0, br->cfg[0x19] = 1, br->cfg[0x1A] = 1;
	add_fdev(0, 0x10, 0x1234, 0x0002, 0x02000000, 0x80); /* multi-function */
	add_fdev(0, 0x11, 0x1234, 0x0003, 0x02000000, 0);
	struct fdev *ide = add_fdev(1, 0x18, 0x8086, 0x7010, 0x01018000, 0); /* 01:03.0 IDE */
	set_bar(ide, 0, 0xC001, 8);
	set_bar(ide, 1, 0xFEB00004, 0x4000); /* 64-bit memory */
	set_bar(ide, 2, 0x00000001, 1);      /* the high half: all its bits writable */
	set_bar(ide, 4, 0xC041, 16);
	ide->cfg[4] = 0x05;
	struct fdev *sata = add_fdev(0, 0x20, 0x8086, 0x2922, 0x01060102, 0); /* 00:04.0 AHCI-like */
	set_bar(sata, 2, 0xFEB20004, 0x1000);                                 /* 64-bit memory */
	set_bar(sata, 3, 0x00000000, 1);
	set_bar(sata, 4, 0xC0C1, 32);
	set_bar(sata, 5, 0xFEB10000, 0x2000);
	sata->cfg[4] = 0x07;
}

/* ---- The driver under test. ---- */

static struct {
	unsigned binds, writes, written;
	struct pci_dev *d;
	u16 off;
	unsigned size;
	u32 bar4;
	u16 cmd;
} drv;

static void t_bind(struct pci_dev *d)
{
	drv.binds++;
	drv.d = d;
}

static bool t_cfg_write(struct pci_dev *d, u16 offset, unsigned size, u32 *val)
{
	(void)d, (void)size;
	drv.writes++;
	if (offset == 0x40)
		return false;
	if (offset == 0x44)
		*val = 0x1234;
	return true;
}

static void t_cfg_written(struct pci_dev *d, u16 offset, unsigned size)
{
	drv.written++;
	drv.off = offset, drv.size = size;
	drv.bar4 = d->bar[4];
	drv.cmd = d->command;
}

static const struct pci_driver test_ide_driver = {
	.name = "test-ide",
	.vendor = PCI_ANY_ID,
	.device = PCI_ANY_ID,
	.class = 0x01,
	.subclass = 0x01,
	.bind = t_bind,
	.cfg_write = t_cfg_write,
	.cfg_written = t_cfg_written,
};
PCI_DRIVER(test_ide_driver);

/* A driver that follows its BARs with regions (an AHCI-like function: BAR2-3 64-bit memory,
 * BAR4 I/O, BAR5 memory). */
static struct {
	unsigned calls, bar;
	struct pci_window old, now;
	u8 cmd_during; /* the device's command register while bar_moved ran */
	bool refuse;
	struct pci_dev *d;
} fb;
static struct pci_region f_io, f_abar, f_wide;

static u32 f_port(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	(void)ctx, (void)port, (void)size, (void)in, (void)val;
	return 0x5A;
}

static bool f_mmio(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	(void)v, (void)ctx, (void)gpa, (void)size, (void)write, (void)val;
	return true;
}

static struct pci_region *f_region(unsigned bar)
{
	return bar == 4 ? &f_io : bar == 5 ? &f_abar : bar == 2 ? &f_wide : NULL;
}

static void f_bind(struct pci_dev *d)
{
	fb.d = d;
	f_io = (struct pci_region){ .io = true, .port = f_port };
	f_abar = (struct pci_region){ .mem = f_mmio };
	f_wide = (struct pci_region){ .access = PT_RO, .mem = f_mmio };
	for (unsigned bar = 2; bar < 6; bar++) {
		struct pci_window w;
		pci_bar_window(d, bar, &w);
		if (f_region(bar))
			CHECK(pci_region_place(f_region(bar), &w));
	}
}

static bool f_bar_moved(struct pci_dev *d, unsigned bar, const struct pci_window *old, const struct pci_window *now)
{
	(void)d;
	fb.calls++, fb.bar = bar, fb.old = *old, fb.now = *now;
	fb.cmd_during = fdev_at(0, 0x20)->cfg[4];
	if (fb.refuse)
		return false;
	return f_region(bar) ? pci_region_place(f_region(bar), now) : true;
}

static const struct pci_driver test_follow_driver = {
	.name = "test-follow",
	.vendor = PCI_ANY_ID,
	.device = PCI_ANY_ID,
	.class = 0x01,
	.subclass = 0x06,
	.bind = f_bind,
	.bar_moved = f_bar_moved,
};
PCI_DRIVER(test_follow_driver);

static void setup(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	build_machine();
	pci_init(false);
}

/* The guest's IN/OUT, through the exit handler. */
static u32 guest_io(u16 port, unsigned size, bool in, u32 val)
{
	struct vcpu v;
	memset(&v, 0, sizeof(v));
	v.exit.reason = EXIT_IO;
	v.exit.io = (struct io_exit){ port, (u8)size, 4, in, false, false };
	v.gpr[RAX] = val;
	handle_io(&v);
	return (u32)v.gpr[RAX];
}

static u32 guest_cfg_read(u8 bus, u8 devfn, u16 off, unsigned size)
{
	guest_io(0xCF8, 4, false, 0x80000000u | (u32)bus << 16 | (u32)devfn << 8 | (off & 0xFC));
	return guest_io((u16)(0xCFC + (off & 3)), size, true, 0) & (size == 4 ? ~0u : (1u << (8 * size)) - 1);
}

static void guest_cfg_write(u8 bus, u8 devfn, u16 off, unsigned size, u32 val)
{
	guest_io(0xCF8, 4, false, 0x80000000u | (u32)bus << 16 | (u32)devfn << 8 | (off & 0xFC));
	guest_io((u16)(0xCFC + (off & 3)), size, false, val);
}

static void enumerates_and_binds(void)
{
	setup();
	struct pci_dev *d;
	CHECK_EQ(pci_devices(&d), 6); /* through the bridge, both functions */
	CHECK(pci_find(0, 0x11) != NULL);
	CHECK_EQ(drv.binds, 1);
	CHECK(drv.d == pci_find(1, 0x18));
	CHECK_EQ(drv.d->class, 1);
	CHECK_EQ(drv.d->progif, 0x80);
	CHECK_EQ(drv.d->bar[0], 0xC001);
	CHECK_EQ(drv.d->command, 5);
	CHECK_EQ(drv.d->bar_size[0], 8);
	CHECK_EQ(drv.d->bar_size[1], 0x4000);
	CHECK_EQ(drv.d->bar_size[4], 16);
	CHECK_EQ(pci_bar_addr(drv.d, 1), 0x1FEB00000ull);
	CHECK_EQ(pci_bar_addr(drv.d, 4), 0xC040);
	CHECK_EQ(fdev_at(1, 0x18)->cfg[4], 5);       /* decoding restored after sizing */
	CHECK_EQ(fdev_at(1, 0x18)->cfg[0x10], 0x01); /* BAR restored */
}

static void address_is_shadowed(void)
{
	setup();
	guest_io(0xCF8, 4, false, 0x80000000u | 0x18 << 8 | 0x10000 | 0x3);
	CHECK_EQ(guest_io(0xCF8, 4, true, 0), 0x80011800u); /* reserved bits 1:0 not kept */
	/* Parapet's own access in between does not disturb the guest's pair. */
	CHECK_EQ(pci_cfg_read(0, 0x00, 0, 4), 0x12378086u);
	CHECK_EQ(guest_io(0xCFC, 4, true, 0), 0x70108086u);
	CHECK_EQ(guest_io(0xCFE, 2, true, 0), 0x7010);
	CHECK_EQ(guest_io(0xCFF, 1, true, 0), 0x70);
	/* Narrow accesses to 0xCF8-0xCFB are other registers (0xCF9: reset control): hardware. */
	guest_io(0xCF9, 1, false, 0);
	CHECK_EQ(fake_hw_port, 0xCF9);
	CHECK_EQ(guest_io(0xCF8, 4, true, 0), 0x80011800u);
}

static void unbound_pass_through(void)
{
	setup();
	unsigned w = drv.writes;
	guest_cfg_write(0, 0x10, 0x3C, 1, 0x0B);
	CHECK_EQ(fdev_at(0, 0x10)->cfg[0x3C], 0x0B);
	CHECK_EQ(guest_cfg_read(0, 0x10, 0x3C, 1), 0x0B);
	CHECK_EQ(guest_cfg_read(2, 0, 0, 4), 0xFFFFFFFF); /* nothing there */
	CHECK_EQ(drv.writes, w);
}

static void bound_writes_are_mediated(void)
{
	setup();
	unsigned w = drv.writes, n = drv.written;
	guest_cfg_write(1, 0x18, 0x40, 4, 0xAAAA); /* dropped by the driver */
	CHECK_EQ(drv.writes, w + 1);
	CHECK_EQ(drv.written, n);
	CHECK_EQ(fdev_at(1, 0x18)->cfg[0x40], 0);
	guest_cfg_write(1, 0x18, 0x44, 2, 0xFFFF); /* changed by the driver */
	CHECK_EQ(fdev_at(1, 0x18)->cfg[0x44], 0x34);
	CHECK_EQ(drv.written, n + 1);
	CHECK_EQ(drv.off, 0x44);
	/* The guest moves BAR4 and turns bus mastering on: tracked before cfg_written runs. */
	guest_cfg_write(1, 0x18, 0x20, 4, 0xD001);
	CHECK_EQ(drv.bar4, 0xD001);
	CHECK_EQ(drv.d->bar[4], 0xD001);
	guest_cfg_write(1, 0x18, 0x04, 2, 0x0007);
	CHECK_EQ(drv.cmd, 7);
	CHECK_EQ(drv.off, 4);
	CHECK_EQ(drv.size, 2);
	/* A byte write inside the dword keeps its offset and size. */
	guest_cfg_write(1, 0x18, 0x21, 1, 0xE0);
	CHECK_EQ(drv.off, 0x21);
	CHECK_EQ(drv.size, 1);
	CHECK_EQ(drv.d->bar[4], 0xE001);
	CHECK_EQ(pci_stats.dropped_writes >= 1, 1);
}

static void bar_sizing_by_the_guest(void)
{
	setup();
	guest_cfg_write(1, 0x18, 0x10, 4, 0xFFFFFFFF);
	CHECK_EQ(guest_cfg_read(1, 0x18, 0x10, 4), 0xFFFFFFF9u); /* size 8, I/O */
	CHECK_EQ(drv.d->bar[0], 0xFFFFFFF9u);
	guest_cfg_write(1, 0x18, 0x10, 4, 0xC001);
	CHECK_EQ(guest_cfg_read(1, 0x18, 0x10, 4), 0xC001);
	CHECK_EQ(drv.d->bar[0], 0xC001);
	guest_cfg_write(1, 0x18, 0x14, 4, 0xFFFFFFFF);
	CHECK_EQ(guest_cfg_read(1, 0x18, 0x14, 4), 0xFFFFC004u); /* 16 KiB, 64-bit memory */
	guest_cfg_write(1, 0x18, 0x14, 4, 0xFEB00000);
}

static void bridge_bus_numbers_guarded(void)
{
	setup();
	guest_cfg_write(0, 0x08, 0x18, 4, 0x00050500); /* renumber the bridge above the device */
	CHECK_EQ(fdev_at(0, 0x08)->cfg[0x19], 1);
	guest_cfg_write(0, 0x08, 0x1A, 1, 9);
	CHECK_EQ(fdev_at(0, 0x08)->cfg[0x1A], 1);
	guest_cfg_write(0, 0x08, 0x3C, 1, 0x0A); /* other registers pass */
	CHECK_EQ(fdev_at(0, 0x08)->cfg[0x3C], 0x0A);
}

/* ---- ECAM discovery. ---- */

static u8 acpi_mem[0x100000]; /* "physical" 0 .. 1 MiB */

static const void *acpi_map(u64 pa, u64 len)
{
	if (pa >= sizeof(acpi_mem) || len > sizeof(acpi_mem) - pa)
		return NULL;
	return acpi_mem + pa;
}

static void fix_sum(u8 *p, unsigned len, unsigned at)
{
	u8 s = 0;
	p[at] = 0;
	for (unsigned i = 0; i < len; i++)
		s = (u8)(s + p[i]);
	p[at] = (u8)-s;
}

static void header(u8 *t, const char *sig, u32 len)
{
	memcpy(t, sig, 4);
	memcpy(t + 4, &len, 4);
	t[8] = 1;
}

static void mcfg_found(void)
{
	memset(acpi_mem, 0, sizeof(acpi_mem));
	/* RSDP v2 at 0xF0010 -> XSDT at 0x7000 -> [FACP at 0x7100, MCFG at 0x7200]. */
	u8 *r = acpi_mem + 0xF0010;
	memcpy(r, "RSD PTR ", 8);
	r[15] = 2;
	u32 rlen = 36;
	memcpy(r + 20, &rlen, 4);
	u64 xsdt = 0x7000;
	memcpy(r + 24, &xsdt, 8);
	fix_sum(r, 20, 8);
	fix_sum(r, 36, 32);
	u8 *x = acpi_mem + 0x7000;
	header(x, "XSDT", 36 + 16);
	u64 e[2] = { 0x7100, 0x7200 };
	memcpy(x + 36, e, 16);
	fix_sum(x, 52, 9);
	header(acpi_mem + 0x7100, "FACP", 40);
	fix_sum(acpi_mem + 0x7100, 40, 9);
	u8 *m = acpi_mem + 0x7200;
	header(m, "MCFG", 44 + 32);
	u64 base1 = 0xC0000000, base0 = 0xB0000000;
	memcpy(m + 44, &base1, 8);
	m[44 + 8] = 1; /* segment 1 first: skipped */
	m[44 + 11] = 255;
	memcpy(m + 60, &base0, 8);
	m[60 + 11] = 255;
	fix_sum(m, 76, 9);

	u64 rsdp = acpi_find_rsdp(acpi_map);
	CHECK_EQ(rsdp, 0xF0010);
	u64 mcfg = acpi_find_table(acpi_map, rsdp, "MCFG");
	CHECK_EQ(mcfg, 0x7200);
	struct mcfg_window w;
	CHECK(acpi_mcfg_segment0(acpi_map, mcfg, &w));
	CHECK_EQ(w.base, 0xB0000000);
	CHECK_EQ(w.bus_end, 255);
	/* A bad checksum hides the table; an oversized length is refused. */
	m[50] ^= 1;
	CHECK_EQ(acpi_find_table(acpi_map, rsdp, "MCFG"), 0);
	m[50] ^= 1;
	u32 huge = 0x7FFFFFFF;
	memcpy(m + 4, &huge, 4);
	CHECK_EQ(acpi_find_table(acpi_map, rsdp, "MCFG"), 0);
	/* What firmware without checksums finds first (power/sleep.c): the XSDT's first FACP; a
	 * FACP-signed entry in front with a bad checksum is found first; no RSDT: valid, 0. */
	bool valid;
	CHECK_EQ(acpi_first_entry(acpi_map, rsdp, true, "FACP", &valid), 0x7100);
	CHECK(valid);
	CHECK_EQ(acpi_first_entry(acpi_map, rsdp, false, "FACP", &valid), 0);
	CHECK(valid);
	header(acpi_mem + 0x7300, "FACP", 40); /* no checksum fixed */
	u64 e3[3] = { 0x7300, 0x7100, 0x7200 };
	header(x, "XSDT", 36 + 24);
	memcpy(x + 36, e3, 24);
	fix_sum(x, 60, 9);
	CHECK_EQ(acpi_find_table(acpi_map, rsdp, "FACP"), 0x7100);
	CHECK_EQ(acpi_first_entry(acpi_map, rsdp, true, "FACP", &valid), 0x7300);
	x[40] ^= 1; /* the XSDT itself broken: not valid */
	CHECK_EQ(acpi_first_entry(acpi_map, rsdp, true, "FACP", &valid), 0);
	CHECK(!valid);
	r[0] = 'X';
	CHECK_EQ(acpi_find_rsdp(acpi_map), 0);
}

static void pciexbar_decoding(void)
{
	u64 base;
	u8 end;
	CHECK(q35_pciexbar_decode(0xB0000001, &base, &end));
	CHECK_EQ(base, 0xB0000000);
	CHECK_EQ(end, 255);
	CHECK(q35_pciexbar_decode(0xE0000005, &base, &end));
	CHECK_EQ(base, 0xE0000000);
	CHECK_EQ(end, 63);
	CHECK(!q35_pciexbar_decode(0xB0000000, &base, &end)); /* disabled */
	CHECK(!q35_pciexbar_decode(0xB0000007, &base, &end)); /* reserved length */
}

static void ecam_takes_the_same_path(void)
{
	setup();
	struct mcfg_window w = { 0xB0000000, 0, 0, 255 };
	u64 page = w.base + (1u << 20) + (0x18u << 12), v = 0;
	CHECK(ecam_access(NULL, &w, page + 0x00, 4, false, &v));
	CHECK_EQ(v, 0x70108086);
	CHECK(ecam_access(NULL, &w, page + 0x08, 8, false, &v)); /* two dwords */
	CHECK_EQ(v, 0x0000000001018000ull);
	unsigned writes = drv.writes;
	v = 0xAAAA;
	CHECK(ecam_access(NULL, &w, page + 0x40, 4, true, &v)); /* dropped by the driver */
	CHECK_EQ(drv.writes, writes + 1);
	CHECK_EQ(fdev_at(1, 0x18)->cfg[0x40], 0);
	v = 0xC801;
	CHECK(ecam_access(NULL, &w, page + 0x20, 4, true, &v)); /* BAR4 moved: tracked */
	CHECK_EQ(drv.d->bar[4], 0xC801);
	CHECK_EQ(drv.off, 0x20);
	CHECK(!ecam_access(NULL, &w, page + 0x21, 2, false, &v)); /* unaligned: refused */
	v = 0;
	CHECK(ecam_access(NULL, &w, w.base + 0x104, 2, false, &v)); /* offset >= 256: no ECAM in the fake */
	CHECK_EQ(v, 0xFFFF);
}


/* ---- BARs followed by pci.c, regions. ---- */

static u32 fdev_bar(unsigned i)
{
	u32 v;
	memcpy(&v, &fdev_at(0, 0x20)->cfg[0x10 + 4 * i], 4);
	return v;
}

static void bars_followed(void)
{
	setup();
	struct fdev *f = fdev_at(0, 0x20);
	CHECK(f_io.placed && f_abar.placed && f_wide.placed);
	CHECK_EQ(f_io.base, 0xC0C0);
	CHECK_EQ(f_io.size, 32);
	CHECK_EQ(f_abar.base, 0xFEB10000);
	CHECK_EQ(f_wide.base, 0xFEB20000);
	struct pci_window w;
	pci_bar_window(fb.d, 3, &w); /* the high half: no window of its own */
	CHECK(!w.on && !w.len);

	/* An I/O BAR moved with decoding on: I/O off while it lands and the driver follows. */
	fb.calls = 0;
	guest_cfg_write(0, 0x20, 0x20, 4, 0xD101);
	CHECK_EQ(fb.calls, 1);
	CHECK_EQ(fb.bar, 4);
	CHECK(fb.old.on && fb.old.io && fb.old.base == 0xC0C0 && fb.old.len == 32);
	CHECK(fb.now.on && fb.now.io && fb.now.base == 0xD100);
	CHECK_EQ(fb.cmd_during, 0x06); /* I/O off, memory and bus mastering as they were */
	CHECK_EQ(f->cfg[4], 0x07);
	CHECK_EQ(f_io.base, 0xD100);
	CHECK_EQ(guest_io(0xD104, 1, true, 0), 0x5A); /* the hook moved with it */

	/* Refused: the BAR is put back, decoding on again, the region where it was. */
	fb.refuse = true;
	guest_cfg_write(0, 0x20, 0x20, 4, 0xE001);
	CHECK_EQ(fdev_bar(4), 0xD101);
	CHECK_EQ(fb.d->bar[4], 0xD101);
	CHECK_EQ(f->cfg[4], 0x07);
	CHECK_EQ(f_io.base, 0xD100);
	CHECK_EQ(guest_cfg_read(0, 0x20, 0x20, 4), 0xD101);

	/* Memory turned off (a refusal changes nothing: it is off), then on, refused: left off. */
	guest_cfg_write(0, 0x20, 0x04, 2, 0x0005);
	CHECK_EQ(f->cfg[4], 0x05);
	CHECK(f_abar.placed); /* refused: still trapped, harmless */
	fb.refuse = false;
	guest_cfg_write(0, 0x20, 0x04, 2, 0x0007);
	guest_cfg_write(0, 0x20, 0x04, 2, 0x0005);
	CHECK(!f_abar.placed && !f_wide.placed); /* off: the driver stopped trapping */
	fb.refuse = true;
	guest_cfg_write(0, 0x20, 0x04, 2, 0x0007);
	CHECK_EQ(f->cfg[4], 0x05);
	CHECK_EQ(guest_cfg_read(0, 0x20, 0x04, 2), 0x0005);
	fb.refuse = false;
	fb.calls = 0;
	guest_cfg_write(0, 0x20, 0x04, 2, 0x0007); /* accepted: both memory BARs trapped again */
	CHECK_EQ(fb.calls, 2);
	CHECK_EQ(f->cfg[4], 0x07);
	CHECK(f_abar.placed && f_abar.base == 0xFEB10000 && f_wide.placed);

	/* Sizing as an OS does it: decoding off, all ones, the old value, decoding on. */
	guest_cfg_write(0, 0x20, 0x04, 2, 0x0004);
	CHECK(!f_io.placed && !f_abar.placed);
	fb.calls = 0;
	guest_cfg_write(0, 0x20, 0x24, 4, 0xFFFFFFFF);
	CHECK_EQ(guest_cfg_read(0, 0x20, 0x24, 4), 0xFFFFE000u);
	guest_cfg_write(0, 0x20, 0x24, 4, 0xFEB10000);
	CHECK_EQ(fb.calls, 0); /* windows that stay off call nothing */
	guest_cfg_write(0, 0x20, 0x04, 2, 0x0007);
	CHECK_EQ(fb.calls, 3);
	CHECK(f_io.placed && f_abar.placed && f_wide.placed);

	/* A 64-bit BAR written one half at a time with decoding on: it moves twice; through ECAM
	 * too (an 8-byte write is both halves). */
	guest_cfg_write(0, 0x20, 0x18, 4, 0xFEB30004);
	CHECK_EQ(fb.bar, 2);
	CHECK_EQ(fb.cmd_during, 0x05); /* memory off */
	CHECK_EQ(f_wide.base, 0xFEB30000);
	guest_cfg_write(0, 0x20, 0x1C, 4, 0x2);
	CHECK_EQ(f_wide.base, 0x2FEB30000ull);
	CHECK_EQ(f->cfg[4], 0x07);
	struct mcfg_window ecam = { 0xB0000000, 0, 0, 255 };
	u64 v = 0x00000000FEB20004ull;
	CHECK(ecam_access(NULL, &ecam, ecam.base + (0x20u << 12) + 0x18, 8, true, &v));
	CHECK_EQ(f_wide.base, 0xFEB20000);
	CHECK_EQ(fdev_bar(3), 0);

	/* Onto the guest's RAM, onto Parapet's region (the fake tables refuse the MiB at 1 GiB), onto
	 * another region's pages, below 1 MiB: refused, the BAR put back. */
	hvmem.guest_map.n = 1;
	hvmem.guest_map.e[0] = (struct memmap_entry){ 0x100000, 0x3FF00000, E820_RAM };
	static const u32 bad[] = { 0x00200000, 0x40000000, 0xFEB20000, 0x000E0000 };
	for (unsigned i = 0; i < 4; i++) {
		guest_cfg_write(0, 0x20, 0x24, 4, bad[i]);
		CHECK_EQ(fdev_bar(5), 0xFEB10000);
		CHECK_EQ(f_abar.base, 0xFEB10000);
		CHECK_EQ(f->cfg[4], 0x07);
	}
	hvmem.guest_map.n = 0;
	/* The wide BAR's high half moved it onto the hidden MiB: both halves put back. */
	guest_cfg_write(0, 0x20, 0x18, 4, 0x40000004);
	CHECK_EQ(fdev_bar(2), 0xFEB20004);
	CHECK_EQ(f_wide.base, 0xFEB20000);
}

static void region_place(void)
{
	struct pci_region r = { .io = true, .offset = 2, .len = 1, .port = f_port };
	struct pci_window w = { true, true, 0x3F4, 4 };
	CHECK(pci_region_place(&r, &w));
	CHECK(r.placed && r.base == 0x3F6 && r.size == 1);
	CHECK_EQ(guest_io(0x3F6, 1, true, 0), 0x5A);
	w.base = 0xFFFE; /* past port 0xFFFF */
	CHECK(!pci_region_place(&r, &w));
	w = (struct pci_window){ true, true, 0x370, 2 }; /* the part is beyond the window */
	CHECK(!pci_region_place(&r, &w));
	w = (struct pci_window){ false, true, 0x370000, 0x1000 }; /* memory, for an I/O region */
	CHECK(!pci_region_place(&r, &w));
	CHECK(r.placed && r.base == 0x3F6);
	w = (struct pci_window){ true, false, 0, 0 };
	CHECK(pci_region_place(&r, &w)); /* off: removed */
	CHECK(!r.placed);
	pci_region_remove(&r);

	/* Memory smaller than a page, not page-aligned: its page is trapped. A window that comes to
	 * span other pages than before (never a BAR's: aligned to its size) is added at its new pages
	 * before the old ones are released, so it may not overlap them. */
	struct pci_region m = { .mem = f_mmio };
	w = (struct pci_window){ false, true, 0xFEC80800, 0x100 };
	CHECK(pci_region_place(&m, &w));
	CHECK(m.placed && m.base == 0xFEC80800 && m.size == 0x100);
	w = (struct pci_window){ false, true, 0xFEC80F00, 0x200 }; /* across two pages, one its own */
	CHECK(!pci_region_place(&m, &w));
	CHECK_EQ(m.base, 0xFEC80800);
	w.base = 0xFEC90F00;
	CHECK(pci_region_place(&m, &w));
	CHECK_EQ(m.base, 0xFEC90F00);
	CHECK_EQ(m.size, 0x200);
	w.on = false;
	CHECK(pci_region_place(&m, &w));
	CHECK(!m.placed);
}

static bool sum_ok(const u8 *p, u32 len)
{
	u8 v = 0;
	for (u32 i = 0; i < len; i++)
		v = (u8)(v + p[i]);
	return v == 0;
}

static void table_unlisted(void)
{
	memset(acpi_mem, 0, sizeof(acpi_mem));
	/* RSDP v2 at 0xF0010 -> RSDT at 0x6000 and XSDT at 0x7000, each -> [FACP, DMAR, APIC]. */
	u8 *r = acpi_mem + 0xF0010;
	memcpy(r, "RSD PTR ", 8);
	r[15] = 2;
	u32 rlen = 36, rsdt = 0x6000;
	u64 xsdt = 0x7000;
	memcpy(r + 16, &rsdt, 4);
	memcpy(r + 20, &rlen, 4);
	memcpy(r + 24, &xsdt, 8);
	fix_sum(r, 20, 8);
	fix_sum(r, 36, 32);
	const char *sigs[3] = { "FACP", "DMAR", "APIC" };
	for (unsigned i = 0; i < 3; i++) {
		u8 *t = acpi_mem + 0x7100 + 0x100 * i;
		header(t, sigs[i], 48);
		fix_sum(t, 48, 9);
		u64 pa = 0x7100 + 0x100 * i;
		u32 pa32 = (u32)pa;
		memcpy(acpi_mem + 0x7000 + 36 + 8 * i, &pa, 8);
		memcpy(acpi_mem + 0x6000 + 36 + 4 * i, &pa32, 4);
	}
	header(acpi_mem + 0x7000, "XSDT", 36 + 24);
	fix_sum(acpi_mem + 0x7000, 60, 9);
	header(acpi_mem + 0x6000, "RSDT", 36 + 12);
	fix_sum(acpi_mem + 0x6000, 48, 9);
	u64 rsdp = acpi_find_rsdp(acpi_map);
	CHECK_EQ(acpi_find_table(acpi_map, rsdp, "DMAR"), 0x7200);
	CHECK_EQ(acpi_unlist(acpi_map, rsdp, "DMAR"), 2);
	CHECK_EQ(acpi_find_table(acpi_map, rsdp, "DMAR"), 0);
	CHECK_EQ(acpi_find_table(acpi_map, rsdp, "APIC"), 0x7300);
	CHECK_EQ(acpi_find_table(acpi_map, rsdp, "FACP"), 0x7100);
	u32 xl, rl;
	memcpy(&xl, acpi_mem + 0x7004, 4);
	memcpy(&rl, acpi_mem + 0x6004, 4);
	CHECK_EQ(xl, 36 + 16);
	CHECK_EQ(rl, 36 + 8);
	CHECK(sum_ok(acpi_mem + 0x7000, xl));
	CHECK(sum_ok(acpi_mem + 0x6000, rl));
	u32 second;
	memcpy(&second, acpi_mem + 0x6000 + 40, 4);
	CHECK_EQ(second, 0x7300);                         /* the RSDT (an older OS's view) too */
	CHECK_EQ(acpi_unlist(acpi_map, rsdp, "DMAR"), 0); /* nothing left to take out */
}

TESTS(pci_tests) = {
	{ "pci: enumeration follows bridges and functions; the driver binds; BARs sized", enumerates_and_binds },
	{ "pci: the guest's CONFIG_ADDRESS is shadowed; Parapet's accesses do not interleave", address_is_shadowed },
	{ "pci: unbound devices pass through", unbound_pass_through },
	{ "pci: writes to a bound device go through the driver; BARs and command tracked", bound_writes_are_mediated },
	{ "pci: BAR sizing by the guest keeps working", bar_sizing_by_the_guest },
	{ "pci: bus numbers of a bridge above a bound device are kept", bridge_bus_numbers_guarded },
	{ "acpi: RSDP -> XSDT -> MCFG with checks", mcfg_found },
	{ "acpi: a table taken out of the XSDT and the RSDT", table_unlisted },
	{ "ecam: q35 PCIEXBAR decoding", pciexbar_decoding },
	{ "ecam: a trapped page's accesses take the 0xCFC path", ecam_takes_the_same_path },
	{ "pci: BARs followed: moves, refusals restore, decoding held off, sizing, 64-bit halves, RAM refused",
	    bars_followed },
	{ "pci: regions: I/O and memory parts of a window, refusals, off removes", region_place },
	{ NULL, NULL },
};
