/* fw_cfg mediation against a fake QEMU fw_cfg device (selector, data, DMA as hw/nvram/fw_cfg.c
 * behaves), driven through the real port-I/O path: blocked keys, the DMA checks, the private
 * descriptor (no double fetch), odd register accesses. */
#include "test.h"
#include "drivers/fwcfg/fwcfg.h"
#include "vmm/gmem.h"
#include "vmm/io.h"
#include "vmm/vcpu.h"
#include "core/log.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Guest RAM is 64 KiB at RAM_BASE (host = guest-physical); the 64 KiB after it stand for
 * Parapet's region: mapped, but not RAM in the guest's map, and never to be touched. */
#define RAM_BASE 0x50000000ul
#define RAM_SIZE 0x10000ul
#define HIDDEN (RAM_BASE + RAM_SIZE)
static u8 *mem;
static struct memmap map;

u64 pgalloc(unsigned n)
{
	void *p = aligned_alloc(4096, n * 4096ul);
	memset(p, 0, n * 4096ul);
	return (u64)(uintptr_t)p;
}

void panic(const char *fmt, ...)
{
	fprintf(stderr, "panic: %s\n", fmt);
	abort();
}

static u32 be32(u32 v)
{
	return __builtin_bswap32(v);
}
static u64 be64(u64 v)
{
	return __builtin_bswap64(v);
}

/* ---- The fake device. ---- */

static const char file20[] = "etc/harmless file";
static const char kernel[] = "KERNEL+MODULES: the policy record and its keys";

static struct {
	bool present;
	u16 cur;
	u32 off;
	u64 dma_addr;
	unsigned transfers, dma_writes, byte_writes, wild;
	u64 last_desc;          /* the descriptor address the device was given */
	struct fwcfg_dma *race; /* rewritten by "another CPU" as the device starts */
} dev;

static const u8 *item(u16 key, u32 *len)
{
	static const u8 id[4] = { 3, 0, 0, 0 };
	const void *p = NULL;
	*len = 0;
	if (key == FWCFG_KEY_INVALID || (key & 0x8000))
		return NULL;
	switch (key & FWCFG_KEY_ENTRY_MASK) {
	case 0x00:
		p = "QEMU", *len = 4;
		break;
	case 0x01:
		p = id, *len = 4;
		break;
	case 0x11:
		p = kernel, *len = sizeof(kernel);
		break;
	case 0x20:
		p = file20, *len = sizeof(file20);
		break;
	}
	return p;
}

static void dev_select(u16 key)
{
	dev.cur = (key & FWCFG_KEY_ENTRY_MASK) >= 0x40 ? FWCFG_KEY_INVALID : key;
	dev.off = 0;
}

static u8 *dev_mem(u64 pa, u32 len)
{
	if (pa < RAM_BASE || pa + len > HIDDEN + RAM_SIZE) {
		dev.wild++;
		return NULL;
	}
	return (u8 *)(uintptr_t)pa;
}

static void dev_dma(void)
{
	u64 a = dev.dma_addr;
	dev.dma_addr = 0;
	dev.transfers++;
	dev.last_desc = a;
	if (dev.race)
		dev.race->address = be64(HIDDEN);
	struct fwcfg_dma *d = (struct fwcfg_dma *)(uintptr_t)a;
	u32 c = be32(d->control), len = be32(d->length), ctl = 0;
	u64 addr = be64(d->address);
	if (c & FWCFG_DMA_SELECT)
		dev_select((u16)(c >> 16));
	bool rd = c & FWCFG_DMA_READ, wr = !rd && (c & FWCFG_DMA_WRITE);
	if (!rd && !wr && !(c & FWCFG_DMA_SKIP))
		len = 0;
	while (len && !(ctl & FWCFG_DMA_ERROR)) {
		u32 ilen, n = len;
		const u8 *data = item(dev.cur, &ilen);
		if (data && dev.off < ilen && ilen - dev.off < n)
			n = ilen - dev.off;
		u8 *m = (rd || wr) ? dev_mem(addr, n) : NULL;
		if (rd && m && data && dev.off < ilen)
			memcpy(m, data + dev.off, n);
		else if (rd && m)
			memset(m, 0, n); /* nothing (more) selected: zeros */
		if (wr)
			ctl |= FWCFG_DMA_ERROR; /* every item here is read-only */
		if (data && dev.off < ilen)
			dev.off += n;
		addr += n;
		len -= n;
	}
	d->control = be32(ctl);
}

static u32 fake_hw(u16 port, unsigned size, bool in, u32 val)
{
	if (!dev.present)
		return in ? 0xFFFFFFFF : 0;
	if (in && (port == 0x510 || port == 0x511) && size == 1) {
		u32 ilen;
		const u8 *data = item(dev.cur, &ilen);
		return data && dev.off < ilen ? data[dev.off++] : 0;
	}
	if (in && port >= 0x514 && port + size <= 0x51C) {
		u32 v = 0;
		memcpy(&v, "QEMU CFG" + (port - 0x514), size);
		return v;
	}
	if (in)
		return 0xFFFFFFFF;
	if (port == 0x510 && size == 2)
		dev_select((u16)val);
	else if ((port == 0x510 || port == 0x511) && size == 1)
		dev.byte_writes++;
	else if (port == 0x514 || port == 0x518) {
		dev.dma_writes++;
		if (size == 4 && port == 0x514)
			dev.dma_addr = (u64)be32(val) << 32;
		else if (size == 4) {
			dev.dma_addr |= be32(val);
			dev_dma();
		}
	}
	return 0;
}

/* ---- The guest's side. ---- */

/* One IN or OUT through Parapet's port-I/O exit handler. */
static u32 pio(u16 port, unsigned size, bool in, u32 val)
{
	struct vcpu v;
	memset(&v, 0, sizeof(v));
	v.exit.reason = EXIT_IO;
	v.exit.next_rip = 2;
	v.exit.io = (struct io_exit){ port, (u8)size, 0, in, false, false };
	v.gpr[RAX] = val;
	handle_io(&v);
	return (u32)v.gpr[RAX];
}

static void select_key(u16 key)
{
	pio(0x510, 2, false, key);
}

static void start_dma(u64 desc)
{
	pio(0x514, 4, false, be32((u32)(desc >> 32)));
	pio(0x518, 4, false, be32((u32)desc));
}

static struct fwcfg_dma *put_desc(u64 at, u32 control, u32 length, u64 address)
{
	struct fwcfg_dma *d = (struct fwcfg_dma *)(uintptr_t)at;
	*d = (struct fwcfg_dma){ be32(control), be32(length), be64(address) };
	return d;
}

static bool hidden_intact(void)
{
	for (u64 i = 0; i < RAM_SIZE; i++)
		if (mem[RAM_SIZE + i] != 0xA5)
			return false;
	return true;
}

static void setup(void)
{
	if (!mem) {
		void *p = mmap((void *)RAM_BASE, 2 * RAM_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED) {
			perror("mmap fake guest RAM");
			exit(2);
		}
		mem = p;
	}
	memset(mem, 0, RAM_SIZE);
	memset(mem + RAM_SIZE, 0xA5, RAM_SIZE);
	memset(&map, 0, sizeof(map));
	memmap_add(&map, RAM_BASE, RAM_SIZE, E820_RAM);
	gmem_init(&map);
	fwcfg_hw = fake_hw;
}

/* The device is hooked once for the rest of the suite (hooks are never removed). */
static void setup_present(void)
{
	static bool hooked;
	setup();
	if (!hooked) {
		dev.present = true;
		fwcfg_init();
		hooked = true;
	}
	dev.race = NULL;
}

/* ---- Tests. ---- */

static void blocked_keys(void)
{
	for (unsigned k = 0; k < 0x40; k++)
		CHECK_EQ(fwcfg_key_blocked((u16)k), (k >= 0x07 && k <= 0x0b) || (k >= 0x10 && k <= 0x18));
	CHECK(fwcfg_key_blocked(0x4011)); /* the write-channel bit */
	CHECK(fwcfg_key_blocked(0x8011)); /* the architecture bit (an empty item: harmless) */
	CHECK(fwcfg_key_blocked(0xC007));
	CHECK(!fwcfg_key_blocked(0x8000)); /* ACPI tables */
	CHECK(!fwcfg_key_blocked(FWCFG_KEY_INVALID));
}

static enum fwcfg_verdict check(u32 control, u32 length, u64 address, struct fwcfg_dma *out)
{
	*out = (struct fwcfg_dma){ be32(control), be32(length), be64(address) };
	return fwcfg_dma_check(out);
}

static void dma_check_pure(void)
{
	setup();
	struct fwcfg_dma d;
	CHECK_EQ(check(FWCFG_DMA_READ, 16, RAM_BASE, &d), FWCFG_DMA_PASS);
	CHECK_EQ(check(FWCFG_DMA_READ, RAM_SIZE, RAM_BASE, &d), FWCFG_DMA_PASS);
	CHECK_EQ(check(FWCFG_DMA_READ, 16, HIDDEN, &d), FWCFG_DMA_REFUSED);
	CHECK_EQ(check(FWCFG_DMA_READ, RAM_SIZE + 1, RAM_BASE, &d), FWCFG_DMA_REFUSED);
	CHECK_EQ(check(FWCFG_DMA_READ, 8, HIDDEN - 4, &d), FWCFG_DMA_REFUSED);
	CHECK_EQ(check(FWCFG_DMA_READ, 16, RAM_BASE - 8, &d), FWCFG_DMA_REFUSED);
	CHECK_EQ(check(FWCFG_DMA_READ | FWCFG_DMA_SKIP, 16, HIDDEN, &d), FWCFG_DMA_REFUSED); /* READ wins */
	CHECK_EQ(check(FWCFG_DMA_WRITE, 16, HIDDEN, &d), FWCFG_DMA_REFUSED);
	CHECK_EQ(check(FWCFG_DMA_WRITE | FWCFG_DMA_SKIP, 16, HIDDEN, &d), FWCFG_DMA_REFUSED);
	CHECK_EQ(check(FWCFG_DMA_READ, 0x2000, ~0ull - 0xFFF, &d), FWCFG_DMA_REFUSED); /* wraps */
	CHECK_EQ(check(FWCFG_DMA_READ, 0xFFFFFFFF, RAM_BASE, &d), FWCFG_DMA_REFUSED);
	CHECK_EQ(check(FWCFG_DMA_SKIP, 0xFFFFFFFF, HIDDEN, &d), FWCFG_DMA_PASS); /* no memory */
	CHECK_EQ(check(0, 16, HIDDEN, &d), FWCFG_DMA_PASS);
	CHECK_EQ(check(FWCFG_DMA_READ, 0, HIDDEN, &d), FWCFG_DMA_PASS);
	/* SELECT: a blocked key becomes the invalid one, the other bits stay. */
	CHECK_EQ(check(0x00110000 | FWCFG_DMA_SELECT | FWCFG_DMA_READ, 16, RAM_BASE, &d), FWCFG_DMA_SELECT_BLOCKED);
	CHECK_EQ(be32(d.control), 0xFFFF0000 | FWCFG_DMA_SELECT | FWCFG_DMA_READ);
	CHECK_EQ(be32(d.length), 16);
	CHECK_EQ(be64(d.address), RAM_BASE);
	CHECK_EQ(check(0x40070000 | FWCFG_DMA_SELECT | FWCFG_DMA_SKIP, 16, HIDDEN, &d), FWCFG_DMA_SELECT_BLOCKED);
	CHECK_EQ(check(0x00110000 | FWCFG_DMA_READ, 16, RAM_BASE, &d), FWCFG_DMA_PASS); /* no SELECT */
	CHECK_EQ(check(0x00200000 | FWCFG_DMA_SELECT | FWCFG_DMA_READ, 16, RAM_BASE, &d), FWCFG_DMA_PASS);
	CHECK_EQ(check(0x00110000 | FWCFG_DMA_SELECT | FWCFG_DMA_READ, 16, HIDDEN, &d), FWCFG_DMA_REFUSED);
}

static void absent_device(void)
{
	setup();
	dev.present = false;
	fwcfg_init();
	int h = io_hook_add(0x510, 2, io_absent, NULL, NULL); /* nothing hooked there */
	CHECK(h >= 0);
	io_hook_remove(h);
	h = io_hook_add(0x514, 8, io_absent, NULL, NULL);
	CHECK(h >= 0);
	io_hook_remove(h);
}

/* Runs before the DMA tests: the first to hook the device. */
static void selector(void)
{
	setup();
	dev.present = true;
	dev.cur = 0x11, dev.off = 3; /* the multiboot ROM left the kernel selected */
	setup_present();
	CHECK_EQ(dev.cur, FWCFG_KEY_INVALID); /* reset by fwcfg_init */
	CHECK_EQ(pio(0x511, 1, true, 0), 0);

	select_key(0x20);
	CHECK_EQ(dev.cur, 0x20);
	for (unsigned i = 0; i < sizeof(file20); i++)
		CHECK_EQ(pio(0x511, 1, true, 0), (u8)file20[i]);
	select_key(0);
	CHECK_EQ(pio(0x511, 1, true, 0), 'Q');
	CHECK_EQ(pio(0x511, 1, true, 0), 'E');

	u32 before = fwcfg_stats.selects_blocked;
	static const u16 blocked[] = { 0x11, 0x12, 0x07, 0x0b, 0x10, 0x15, 0x18, 0x4011, 0x8011, 0xC011 };
	for (unsigned i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
		select_key(0x20);
		select_key(blocked[i]);
		CHECK_EQ(dev.cur, FWCFG_KEY_INVALID);
		for (unsigned k = 0; k < 8; k++)
			CHECK_EQ(pio(0x511, 1, true, 0), 0);
	}
	CHECK_EQ(fwcfg_stats.selects_blocked, before + 10);
	select_key(0x19);
	CHECK_EQ(dev.cur, 0x19);
	select_key(0x0c);
	CHECK_EQ(dev.cur, 0x0c);

	/* A dword OUT at 0x50F: bytes 1-2 reach 0x510 as a 16-bit write, as on QEMU. */
	select_key(0x20);
	pio(0x50F, 4, false, 0x00001100);
	CHECK_EQ(dev.cur, FWCFG_KEY_INVALID);
	/* Byte writes are data writes: no selection. A word at 0x511 is a byte to it. */
	select_key(0x20);
	unsigned bw = dev.byte_writes;
	pio(0x510, 1, false, 0x11);
	pio(0x511, 2, false, 0x0011);
	CHECK_EQ(dev.cur, 0x20);
	CHECK_EQ(dev.byte_writes, bw + 2);
	/* The DMA register reads as the signature. */
	u32 sig = pio(0x514, 4, true, 0);
	CHECK(memcmp(&sig, "QEMU", 4) == 0);
	CHECK_EQ(pio(0x518, 2, true, 0) & 0xFFFF, ' ' | 'C' << 8);
}

static void dma_pass(void)
{
	setup_present();
	u64 desc = RAM_BASE + 0x100;
	unsigned t = dev.transfers;
	struct fwcfg_dma *d = put_desc(desc, 0x00200000 | FWCFG_DMA_SELECT | FWCFG_DMA_READ, sizeof(file20),
	    RAM_BASE + 0x1000);
	start_dma(desc);
	CHECK_EQ(dev.transfers, t + 1);
	CHECK_EQ(d->control, 0);
	CHECK(memcmp(mem + 0x1000, file20, sizeof(file20)) == 0);
	CHECK(dev.last_desc != desc);               /* the device read Parapet's copy... */
	CHECK(gmem_map(dev.last_desc, 16) == NULL); /* ...which is not guest RAM */

	/* The kernel through DMA: the invalid key is selected, zeros arrive. */
	u32 blocked = fwcfg_stats.dma_blocked;
	memset(mem + 0x2000, 0xEE, 64);
	put_desc(desc, 0x00110000 | FWCFG_DMA_SELECT | FWCFG_DMA_READ, 64, RAM_BASE + 0x2000);
	start_dma(desc);
	CHECK_EQ(d->control, 0);
	CHECK_EQ(dev.cur, FWCFG_KEY_INVALID);
	CHECK_EQ(fwcfg_stats.dma_blocked, blocked + 1);
	for (unsigned i = 0; i < 64; i++)
		CHECK_EQ(mem[0x2000 + i], 0);
	put_desc(desc, FWCFG_DMA_READ, 8, RAM_BASE + 0x2000); /* go on without SELECT */
	memset(mem + 0x2000, 0xEE, 8);
	start_dma(desc);
	CHECK_EQ(mem[0x2000], 0);

	/* SKIP and zero-length transfers touch no memory: allowed anywhere. */
	t = dev.transfers;
	put_desc(desc, 0x00200000 | FWCFG_DMA_SELECT | FWCFG_DMA_SKIP, 4, HIDDEN);
	start_dma(desc);
	put_desc(desc + 16, FWCFG_DMA_READ, 0, HIDDEN);
	start_dma(desc + 16);
	CHECK_EQ(dev.transfers, t + 2);
	CHECK_EQ(d->control, 0);
	CHECK_EQ(pio(0x511, 1, true, 0), (u8)file20[4]);
	CHECK(hidden_intact());
	CHECK_EQ(dev.wild, 0);
}

static void dma_refused(void)
{
	setup_present();
	u64 desc = RAM_BASE + 0x200;
	select_key(0x20);
	unsigned t = dev.transfers;
	u32 refused = fwcfg_stats.dma_refused;
	struct {
		u32 control, length;
		u64 address;
	} bad[] = {
		{ FWCFG_DMA_READ, 16, HIDDEN + 0x10 }, { FWCFG_DMA_READ, 8, HIDDEN - 4 },
		{ FWCFG_DMA_READ | FWCFG_DMA_SKIP, 16, HIDDEN }, { FWCFG_DMA_WRITE, 16, HIDDEN },
		{ 0x00000000 | FWCFG_DMA_SELECT | FWCFG_DMA_READ, 4, HIDDEN },
		{ FWCFG_DMA_READ, 0x1000, ~0ull - 0x7FF }, { FWCFG_DMA_READ, 4, 0xFEE00000 }, /* MMIO */
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fwcfg_dma *d = put_desc(desc, bad[i].control, bad[i].length, bad[i].address);
		start_dma(desc);
		CHECK_EQ(be32(d->control), FWCFG_DMA_ERROR);
		CHECK_EQ(be32(d->length), bad[i].length); /* nothing else changed */
	}
	CHECK_EQ(dev.transfers, t);
	CHECK_EQ(dev.cur, 0x20); /* the refused SELECT did not happen */
	CHECK_EQ(fwcfg_stats.dma_refused, refused + 7);

	/* Descriptors outside guest RAM: nothing is read or written anywhere. */
	put_desc(HIDDEN, FWCFG_DMA_READ, 4, RAM_BASE);
	start_dma(HIDDEN);
	CHECK_EQ(be32(((struct fwcfg_dma *)(uintptr_t)HIDDEN)->control), FWCFG_DMA_READ); /* untouched */
	put_desc(HIDDEN - 8, FWCFG_DMA_READ, 4, RAM_BASE);
	start_dma(HIDDEN - 8);
	CHECK_EQ(dev.transfers, t);
	CHECK_EQ(fwcfg_stats.dma_refused, refused + 9);
	memset(mem + RAM_SIZE, 0xA5, 16);
	CHECK(hidden_intact());
	CHECK_EQ(dev.wild, 0);

	/* Counted in the log, rate-limited. */
	char buf[4096];
	u64 pos = 0;
	bool seen = false;
	for (size_t n; (n = log_read(&pos, buf, sizeof(buf) - 1)) != 0;) {
		buf[n] = 0;
		seen |= strstr(buf, "fwcfg: DMA refused") != NULL;
	}
	CHECK(seen);
}

static void dma_register(void)
{
	setup_present();
	u64 desc = RAM_BASE + 0x300;
	struct fwcfg_dma *d = put_desc(desc, 0x00200000 | FWCFG_DMA_SELECT | FWCFG_DMA_READ, 4, RAM_BASE + 0x3000);
	unsigned t = dev.transfers, w = dev.dma_writes;
	/* Writes the device ignores: not 4 bytes, or not at 0x514/0x518. */
	pio(0x518, 2, false, 0);
	pio(0x518, 1, false, 0);
	pio(0x516, 4, false, be32((u32)desc) >> 16 | be32((u32)desc) << 16);
	pio(0x515, 2, false, 0);
	pio(0x51A, 4, false, 0); /* 0x51A-0x51B to Parapet, the rest past it */
	CHECK_EQ(dev.transfers, t);
	CHECK_EQ(dev.dma_writes, w); /* the guest never writes the register */
	/* A high half makes the address leave guest RAM; it is cleared by each transfer. */
	pio(0x514, 4, false, be32(1));
	pio(0x518, 4, false, be32((u32)desc));
	CHECK_EQ(be32(d->control), 0x00200000 | FWCFG_DMA_SELECT | FWCFG_DMA_READ); /* not RAM: untouched */
	pio(0x518, 4, false, be32((u32)desc));
	CHECK_EQ(d->control, 0);
	CHECK_EQ(dev.transfers, t + 1);
	CHECK(memcmp(mem + 0x3000, file20, 4) == 0);
}

static void dma_no_double_fetch(void)
{
	setup_present();
	u64 desc = RAM_BASE + 0x400;
	struct fwcfg_dma *d = put_desc(desc, 0x00200000 | FWCFG_DMA_SELECT | FWCFG_DMA_READ, sizeof(file20),
	    RAM_BASE + 0x4000);
	dev.race = d; /* another CPU points the guest's descriptor at Parapet's memory */
	start_dma(desc);
	dev.race = NULL;
	CHECK_EQ(be64(d->address), HIDDEN);
	CHECK_EQ(d->control, 0);
	CHECK(memcmp(mem + 0x4000, file20, sizeof(file20)) == 0);
	CHECK(hidden_intact());
	CHECK_EQ(dev.wild, 0);
}

TESTS(fwcfg_tests) = {
	{ "fwcfg: blocked keys", blocked_keys },
	{ "fwcfg: DMA descriptor check", dma_check_pure },
	{ "fwcfg: no device, no hooks", absent_device },
	{ "fwcfg: selector, data and signature ports", selector },
	{ "fwcfg: DMA passes in guest RAM, blocked keys read as empty", dma_pass },
	{ "fwcfg: DMA outside guest RAM refused with ERROR", dma_refused },
	{ "fwcfg: DMA address register writes", dma_register },
	{ "fwcfg: DMA descriptor read once", dma_no_double_fetch },
	{ NULL, NULL },
};
