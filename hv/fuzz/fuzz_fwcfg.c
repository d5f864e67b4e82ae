/* libFuzzer: the fw_cfg driver behind the real port-I/O path, given any sequence of guest port
 * accesses and DMA descriptors. A fake device aborts if it is ever asked to select a blocked key,
 * is given a descriptor in guest RAM (it must be Parapet's private copy), or is given a transfer
 * that touches memory outside guest RAM; Parapet's stand-in region must stay unchanged. */
#include "drivers/fwcfg/fwcfg.h"
#include "vmm/gmem.h"
#include "vmm/io.h"
#include "vmm/vcpu.h"
#include "core/log.h"
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RAM_BASE 0x60000000ul
#define RAM_SIZE 0x8000ul /* guest RAM; the next 32 KiB stand for Parapet's */
#define HIDDEN (RAM_BASE + RAM_SIZE)

static u8 *mem;
static struct memmap map;
static u64 dma_addr;
static unsigned data_off;

u32 io_port_hw(u16 port, unsigned size, bool in, u32 val)
{
	(void)port, (void)size, (void)val;
	return in ? 0xFFFFFFFF : 0;
}
void log_sink_init(const struct log_config *cfg)
{
	(void)cfg;
}
void log_sink_write(const char *s, size_t n)
{
	(void)s, (void)n;
}
void panic(const char *fmt, ...)
{
	(void)fmt;
	abort();
}
u64 pgalloc(unsigned n)
{
	void *p = calloc(n, 4096);
	return (u64)(uintptr_t)p;
}

static void dev_select(u16 key)
{
	if (fwcfg_key_blocked(key))
		abort();
	data_off = key == 0 ? 0 : 4;
}

static u32 be32(u32 v)
{
	return __builtin_bswap32(v);
}
static u64 be64(u64 v)
{
	return __builtin_bswap64(v);
}

static void dev_dma(u64 a)
{
	u8 *p = (u8 *)(uintptr_t)a;
	if (gmem_map(a, 16) || (a < HIDDEN + RAM_SIZE && a + 16 > RAM_BASE))
		abort(); /* the guest's own descriptor, or one in its reach */
	struct fwcfg_dma *d = (struct fwcfg_dma *)p;
	u32 c = be32(d->control), len = be32(d->length);
	u64 addr = be64(d->address);
	if (c & FWCFG_DMA_SELECT)
		dev_select((u16)(c >> 16));
	if ((c & (FWCFG_DMA_READ | FWCFG_DMA_WRITE)) && len) {
		if (addr < RAM_BASE || addr > RAM_BASE + RAM_SIZE || len > RAM_BASE + RAM_SIZE - addr)
			abort();
		if (c & FWCFG_DMA_READ)
			memset((void *)(uintptr_t)addr, 0, len);
	}
	d->control = 0;
}

static u32 fake_hw(u16 port, unsigned size, bool in, u32 val)
{
	if (in)
		return port == 0x511 && size == 1 && data_off < 4 ? (u8) "QEMU"[data_off++] : 0;
	if (port == 0x510 && size == 2)
		dev_select((u16)val);
	else if (port == 0x514 && size == 4)
		dma_addr = (u64)be32(val) << 32;
	else if (port == 0x518 && size == 4) {
		u64 a = dma_addr | be32(val);
		dma_addr = 0;
		dev_dma(a);
	}
	return 0;
}

static void pio(u16 port, unsigned size, bool in, u32 val)
{
	struct vcpu v;
	memset(&v, 0, sizeof(v));
	v.exit.reason = EXIT_IO;
	v.exit.io = (struct io_exit){ port, (u8)size, 0, in, false, false };
	v.gpr[RAX] = val;
	handle_io(&v);
}

/* An address near the interesting edges: guest RAM, its end, Parapet's region, 4 GiB, 2^64. */
static u64 take_addr(const u8 **p, size_t *n)
{
	static const u64 bases[] = { RAM_BASE, HIDDEN, HIDDEN + RAM_SIZE, 0, 1ull << 32, ~0ull - 0xFFFF };
	u64 b = bases[take(p, n, 1) % 6];
	return b + (u64)(int16_t)take(p, n, 2);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	if (!mem) {
		mem = mmap((void *)RAM_BASE, 2 * RAM_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (mem == MAP_FAILED)
			abort();
		memmap_add(&map, RAM_BASE, RAM_SIZE, E820_RAM);
		gmem_init(&map);
		fwcfg_hw = fake_hw;
		fwcfg_init();
	}
	memset(mem, 0, RAM_SIZE);
	memset(mem + RAM_SIZE, 0xA5, RAM_SIZE);
	for (unsigned ops = 0; size && ops < 64; ops++) {
		switch (take(&data, &size, 1) % 4) {
		case 0:
			pio(0x510, 2, false, (u32)take(&data, &size, 2));
			break;
		case 1: { /* a descriptor somewhere, then the trigger */
			u64 at = RAM_BASE + take(&data, &size, 2) % RAM_SIZE;
			u32 control = (u32)take(&data, &size, 4), length = (u32)take(&data, &size, 4);
			struct fwcfg_dma d = { be32(control), be32(length), be64(take_addr(&data, &size)) };
			if (at + 16 <= HIDDEN)
				memcpy((void *)(uintptr_t)at, &d, 16);
			if (take(&data, &size, 1) & 1)
				pio(0x514, 4, false, (u32)take(&data, &size, 4));
			pio(0x518, 4, false, be32((u32)at));
			break;
		}
		case 2: { /* anything on or around the ports */
			static const unsigned sizes[] = { 1, 2, 4, 4 };
			u32 x = (u32)take(&data, &size, 2);
			pio((u16)(0x50C + (x & 0x1F)), sizes[(x >> 5) & 3], (x >> 7) & 1, (u32)take(&data, &size, 4));
			break;
		}
		default:
			pio(0x511, 1, true, 0);
		}
	}
	for (unsigned i = 0; i < RAM_SIZE; i++)
		if (mem[RAM_SIZE + i] != 0xA5)
			abort();
	return 0;
}
