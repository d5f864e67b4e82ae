/*
 * ataatk: drives a PIIX-compatible IDE controller straight from userspace, as
 * root, for Parapet's attack tests (see docs/guest.md). Written from ATA/ATAPI-8
 * ACS (task file, protocols) and SFF-8038i (bus-master IDE).
 *
 *   ataatk [--dev BDF] [--unbind] [--timeout MS] [--irq] COMMAND ARGS...
 *
 * Every command prints one result line "ataatk: result=... key=value ..." and
 * exits 0 when the operation ran, whatever the device or a hypervisor did; exit
 * status 1 is a tool error (no controller, no memory, ...), 2 a usage error.
 * Every wait on the hardware has a timeout (default 10 s) and reports it.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/atk.h"

/* ---- ATA task file: offsets from the command block base ---- */
#define ATA_DATA 0
#define ATA_ERROR 1    /* read */
#define ATA_FEATURES 1 /* write */
#define ATA_COUNT 2
#define ATA_LBA_LO 3
#define ATA_LBA_MID 4
#define ATA_LBA_HI 5
#define ATA_DEVICE 6
#define ATA_STATUS 7  /* read: also clears a pending INTRQ */
#define ATA_COMMAND 7 /* write */
/* control block: alternate status (read) / device control (write) */
#define ST_BSY 0x80
#define ST_DRDY 0x40
#define ST_DF 0x20
#define ST_DRQ 0x08
#define ST_ERR 0x01
#define ERR_ABRT 0x04
#define DC_NIEN 0x02
#define DC_SRST 0x04
#define DC_HOB 0x80
#define DEV_LBA 0x40
#define DEV_OBS 0xa0 /* obsolete bits 7 and 5, set for old devices */

/* ---- bus-master IDE (SFF-8038i): offsets from BAR4 + 8 * channel ---- */
#define BM_CMD 0
#define BM_STATUS 2
#define BM_PRDT 4
#define BM_CMD_START 0x01
#define BM_CMD_TO_MEMORY 0x08 /* "read": the device writes memory */
#define BM_ST_ACTIVE 0x01
#define BM_ST_ERROR 0x02
#define BM_ST_INTR 0x04
#define BM_ST_KEEP 0x60 /* drive 0/1 DMA capable: read/write */

/* ---- ATA commands ---- */
#define CMD_READ_SECTORS 0x20
#define CMD_READ_SECTORS_EXT 0x24
#define CMD_READ_DMA_EXT 0x25
#define CMD_WRITE_SECTORS 0x30
#define CMD_WRITE_SECTORS_EXT 0x34
#define CMD_WRITE_DMA_EXT 0x35
#define CMD_READ_DMA 0xc8
#define CMD_WRITE_DMA 0xca
#define CMD_FLUSH_CACHE 0xe7
#define CMD_FLUSH_CACHE_EXT 0xea
#define CMD_IDENTIFY 0xec

#define SECTOR 512
#define PAGE 4096
#define MAX_PRD (PAGE / 8)
#define MAX_DMA_SECTORS (MAX_PRD * (PAGE / SECTOR)) /* one PRD table page of page-sized entries */
#define MAX_PIO_SECTORS 65536

static void usage(void) __attribute__((noreturn));

/* ---- PCI: the controller, through sysfs and through ports 0xCF8/0xCFC ---- */

struct controller {
	struct pcifn f; /* bdf, path, driver */
	uint16_t vendor, device;
	uint8_t progif;
	uint32_t bar[6];
	uint16_t cmd_base[2], ctl_base[2]; /* ctl_base: alternate status / device control port */
	uint16_t bm_base;                  /* 0: no bus master */
};

static struct controller ctl;
static const char *opt_dev;
static bool opt_irq;

static uint32_t cfg_read(unsigned off, unsigned size)
{
	return pci_cfg_read(&ctl.f, off, size);
}

static void cfg_write(unsigned off, unsigned size, uint32_t v)
{
	pci_cfg_write(&ctl.f, off, size, v);
}

static void find_controller(void)
{
	if (!pci_find(&ctl.f, opt_dev, 0x010100, 0xffff00))
		die(opt_dev ? "no IDE controller (PCI class 01:01) at %s" : "no IDE controller (PCI class 01:01)%s",
		    opt_dev ? opt_dev : "");
	ctl.vendor = (uint16_t)cfg_read(0, 2);
	ctl.device = (uint16_t)cfg_read(2, 2);
	ctl.progif = (uint8_t)cfg_read(9, 1);
	for (int i = 0; i < 6; i++)
		ctl.bar[i] = cfg_read(0x10 + 4 * i, 4);
	/* Compatibility mode: the legacy ports; native mode (prog-if bit 0/2): BAR0-3. */
	static const uint16_t legacy_cmd[2] = { 0x1f0, 0x170 }, legacy_ctl[2] = { 0x3f6, 0x376 };
	for (int ch = 0; ch < 2; ch++) {
		if (ctl.progif & (1 << (2 * ch))) {
			ctl.cmd_base[ch] = (uint16_t)(ctl.bar[2 * ch] & 0xfffc);
			ctl.ctl_base[ch] = (uint16_t)((ctl.bar[2 * ch + 1] & 0xfffc) + 2);
		} else {
			ctl.cmd_base[ch] = legacy_cmd[ch];
			ctl.ctl_base[ch] = legacy_ctl[ch];
		}
	}
	ctl.bm_base = (ctl.progif & 0x80) && (ctl.bar[4] & 1) ? (uint16_t)(ctl.bar[4] & 0xfffc) : 0;
}

/* Unbinds the controller from its driver (ata_piix), as `echo BDF > .../unbind`. */
static void unbind_driver(void)
{
	pci_unbind(&ctl.f);
}

/* Turns on I/O space and bus mastering (the driver's remove turned bus mastering off). */
static void enable_controller(void)
{
	uint16_t cmd = (uint16_t)cfg_read(4, 2);
	if ((cmd & 5) != 5)
		cfg_write(4, 2, cmd | 5);
}

static void prepare_controller(bool unbind)
{
	find_controller();
	if (unbind)
		unbind_driver();
	else if (ctl.f.driver[0])
		warnx_(
		    "%s is bound to %s, which may use the controller too (pass --unbind, or boot with modprobe.blacklist=ata_piix)",
		    ctl.f.bdf, ctl.f.driver);
	enable_controller();
	need_io();
}

/* ---- DMA memory: locked pages below 4 GiB, the reach of a 32-bit PRD (lib/atk.c) ---- */

#define DMA_LIMIT 0x100000000ull

struct prd {
	uint32_t addr;
	uint16_t bytes; /* 0 means 64 KiB */
	uint16_t flags; /* bit 15: end of table */
} __attribute__((packed));

#define PRD_EOT 0x8000

/* PRD entries for `bytes` of m, one per page. Returns the entry count. */
static unsigned prd_fill(volatile struct prd *t, const struct dmamem *m, size_t bytes)
{
	unsigned n = 0;
	for (size_t off = 0; off < bytes; off += PAGE, n++) {
		size_t len = bytes - off < PAGE ? bytes - off : PAGE;
		t[n].addr = (uint32_t)m->pa[off / PAGE];
		t[n].bytes = (uint16_t)len;
		t[n].flags = 0;
	}
	if (n)
		t[n - 1].flags = PRD_EOT;
	return n;
}

/* PRD entries covering [addr, addr + bytes), split so none crosses a 64 KiB boundary. */
static unsigned prd_fill_phys(volatile struct prd *t, uint64_t addr, size_t bytes)
{
	unsigned n = 0;
	while (bytes && n < MAX_PRD) {
		uint64_t room = 0x10000 - (addr & 0xffff);
		size_t len = bytes < room ? bytes : room;
		t[n].addr = (uint32_t)addr;
		t[n].bytes = (uint16_t)(len & 0xffff);
		t[n].flags = 0;
		n++, addr += len, bytes -= len;
	}
	if (bytes)
		die("the range needs more than %d PRD entries", MAX_PRD);
	if (n)
		t[n - 1].flags = PRD_EOT;
	return n;
}

/* ---- the ATA channel ---- */

struct chan {
	int ch, pos;
	uint16_t cmd, ctl, bm; /* bm: this channel's bus-master block, 0 if none */
};

struct outcome {
	bool timeout, nodevice;
	uint8_t status, error, bm;
	const char *stage; /* where a timeout happened */
};

static struct chan channel(int ch, int pos)
{
	struct chan c = { ch, pos, ctl.cmd_base[ch], ctl.ctl_base[ch],
		ctl.bm_base ? (uint16_t)(ctl.bm_base + 8 * ch) : 0 };
	return c;
}

static uint8_t altstat(const struct chan *c)
{
	return inb(c->ctl);
}

static void delay400ns(const struct chan *c)
{
	for (int i = 0; i < 5; i++)
		(void)altstat(c);
}

/* Waits for BSY clear; returns the alternate status, or -1 on timeout. */
static int wait_not_busy(const struct chan *c)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		uint8_t s = altstat(c);
		if (!(s & ST_BSY))
			return s;
		if (now_ms() > end)
			return -1;
	}
}

/* Waits for BSY clear and then DRQ, ERR or DF. Returns 1 for DRQ, 0 for an error, -1 on timeout. */
static int wait_drq(const struct chan *c, uint8_t *st)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		uint8_t s = altstat(c);
		*st = s;
		if (!(s & ST_BSY)) {
			if (s & (ST_ERR | ST_DF))
				return 0;
			if (s & ST_DRQ)
				return 1;
		}
		if (now_ms() > end)
			return -1;
	}
}

static void finish(const struct chan *c, struct outcome *o)
{
	delay400ns(c);
	if (!o->timeout && wait_not_busy(c) < 0) {
		o->timeout = true;
		o->stage = "completion";
	}
	o->status = inb(c->cmd + ATA_STATUS);
	o->error = inb(c->cmd + ATA_ERROR);
}

/*
 * Selects the device and waits until it is not busy. False (with o set) when
 * that times out, or when no device answers: status 0xff/0x7f (nothing drives
 * the bus) or 0x00 (device 0 answering for an absent device 1).
 */
static bool select_device(const struct chan *c, struct outcome *o)
{
	outb(opt_irq ? 0 : DC_NIEN, c->ctl);
	if (wait_not_busy(c) < 0)
		goto timeout;
	outb(DEV_OBS | DEV_LBA | (c->pos << 4), c->cmd + ATA_DEVICE);
	delay400ns(c);
	int s = wait_not_busy(c);
	if (s < 0)
		goto timeout;
	if (s == 0xff || s == 0x7f || s == 0x00) {
		o->nodevice = true;
		o->status = (uint8_t)s;
		o->error = inb(c->cmd + ATA_ERROR);
		return false;
	}
	return true;
timeout:
	o->timeout = true;
	o->stage = "select";
	o->status = altstat(c);
	o->error = inb(c->cmd + ATA_ERROR);
	return false;
}

/* Loads the task file (48-bit: previous contents first) and writes the command. */
static void issue(const struct chan *c, uint8_t command, uint16_t features, uint32_t count, uint64_t lba, bool lba48)
{
	uint16_t cmd = c->cmd;
	if (lba48) {
		outb((uint8_t)(features >> 8), cmd + ATA_FEATURES);
		outb((uint8_t)(count >> 8), cmd + ATA_COUNT);
		outb((uint8_t)(lba >> 24), cmd + ATA_LBA_LO);
		outb((uint8_t)(lba >> 32), cmd + ATA_LBA_MID);
		outb((uint8_t)(lba >> 40), cmd + ATA_LBA_HI);
		outb((uint8_t)features, cmd + ATA_FEATURES);
		outb((uint8_t)count, cmd + ATA_COUNT);
		outb((uint8_t)lba, cmd + ATA_LBA_LO);
		outb((uint8_t)(lba >> 8), cmd + ATA_LBA_MID);
		outb((uint8_t)(lba >> 16), cmd + ATA_LBA_HI);
		outb(DEV_OBS | DEV_LBA | (c->pos << 4), cmd + ATA_DEVICE);
	} else {
		outb((uint8_t)features, cmd + ATA_FEATURES);
		outb((uint8_t)count, cmd + ATA_COUNT);
		outb((uint8_t)lba, cmd + ATA_LBA_LO);
		outb((uint8_t)(lba >> 8), cmd + ATA_LBA_MID);
		outb((uint8_t)(lba >> 16), cmd + ATA_LBA_HI);
		outb(DEV_OBS | DEV_LBA | (c->pos << 4) | ((lba >> 24) & 0x0f), cmd + ATA_DEVICE);
	}
	outb(command, cmd + ATA_COMMAND);
}

static void in_words(uint16_t port, void *buf, unsigned long n)
{
	__asm__ volatile("rep insw" : "+D"(buf), "+c"(n) : "d"(port) : "memory");
}

static void out_words(uint16_t port, const void *buf, unsigned long n)
{
	__asm__ volatile("rep outsw" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

/*
 * PIO data-in (to_host) or data-out: one DRQ block per sector. Returns the
 * sectors transferred.
 */
static unsigned pio_transfer(const struct chan *c, uint8_t command, uint16_t features, uint32_t count, uint64_t lba,
    bool lba48, uint8_t *buf, unsigned sectors, bool to_host, struct outcome *o)
{
	unsigned done = 0;
	if (!select_device(c, o))
		return 0;
	issue(c, command, features, count, lba, lba48);
	delay400ns(c);
	for (; done < sectors; done++) {
		uint8_t st;
		int r = wait_drq(c, &st);
		if (r < 0) {
			o->timeout = true;
			o->stage = "drq";
			break;
		}
		if (r == 0)
			break;
		if (to_host)
			in_words(c->cmd + ATA_DATA, buf + (size_t)done * SECTOR, SECTOR / 2);
		else
			out_words(c->cmd + ATA_DATA, buf + (size_t)done * SECTOR, SECTOR / 2);
		delay400ns(c);
	}
	finish(c, o);
	return done;
}

static bool ata_failed(const struct outcome *o)
{
	return (o->status & (ST_ERR | ST_DF)) || (o->bm & BM_ST_ERROR);
}

static const char *verdict(const struct outcome *o)
{
	if (o->timeout)
		return "timeout";
	if (o->nodevice)
		return "nodevice";
	if ((o->status & ST_ERR) && (o->error & ERR_ABRT))
		return "aborted";
	if (ata_failed(o))
		return "error";
	return "ok";
}

/* Status words common to every result line. */
static const char *regs(const struct outcome *o)
{
	static char out[160];
	snprintf(out, sizeof out, "status=0x%02x error=0x%02x bm=0x%02x%s%s", o->status, o->error, o->bm,
	    o->timeout ? " timeout_at=" : "", o->timeout ? o->stage : "");
	return out;
}

/* Called right after the bus master is started (the prd-race attacks hook in here). */
typedef void (*dma_hook)(void *arg);

/*
 * A DMA command as SFF-8038i describes it: stop the engine, load the PRD table
 * address and the direction, clear interrupt and error (write 1), load the task
 * file and the command, then start. Completion is polled (nIEN is set): the
 * device no longer busy, and the engine no longer active or interrupting.
 */
static void dma_command(const struct chan *c, uint16_t bm, uint8_t command, uint32_t count, uint64_t lba, bool lba48,
    uint32_t prdt_pa, bool to_memory, struct outcome *o, dma_hook hook, void *arg)
{
	uint8_t dir = to_memory ? BM_CMD_TO_MEMORY : 0;
	outb(dir, bm + BM_CMD);
	outl(prdt_pa, bm + BM_PRDT);
	uint8_t bs = inb(bm + BM_STATUS);
	outb((bs & BM_ST_KEEP) | BM_ST_INTR | BM_ST_ERROR, bm + BM_STATUS);
	if (!select_device(c, o)) {
		o->bm = inb(bm + BM_STATUS);
		return;
	}
	issue(c, command, 0, count, lba, lba48);
	outb(dir | BM_CMD_START, bm + BM_CMD);
	if (hook)
		hook(arg);
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		uint8_t s = altstat(c), b = inb(bm + BM_STATUS);
		if (b & BM_ST_ERROR)
			break;
		if (!(s & ST_BSY)) {
			if (s & (ST_ERR | ST_DF))
				break;
			if (!(s & ST_DRQ) && (!(b & BM_ST_ACTIVE) || (b & BM_ST_INTR)))
				break;
		}
		if (now_ms() > end) {
			o->timeout = true;
			o->stage = "dma";
			break;
		}
	}
	outb(dir, bm + BM_CMD); /* stop the engine */
	o->bm = inb(bm + BM_STATUS);
	o->status = inb(c->cmd + ATA_STATUS);
	o->error = inb(c->cmd + ATA_ERROR);
	outb((o->bm & BM_ST_KEEP) | BM_ST_INTR | BM_ST_ERROR, bm + BM_STATUS);
}

static uint8_t rw_command(bool write, bool dma, bool lba48)
{
	if (dma)
		return write ? (lba48 ? CMD_WRITE_DMA_EXT : CMD_WRITE_DMA) : (lba48 ? CMD_READ_DMA_EXT : CMD_READ_DMA);
	return write ? (lba48 ? CMD_WRITE_SECTORS_EXT : CMD_WRITE_SECTORS)
		     : (lba48 ? CMD_READ_SECTORS_EXT : CMD_READ_SECTORS);
}

static void check_range(uint64_t lba, unsigned count, bool lba48, bool dma)
{
	unsigned max = lba48 ? MAX_PIO_SECTORS : 256;
	if (dma && max > MAX_DMA_SECTORS)
		max = MAX_DMA_SECTORS;
	if (count < 1 || count > max)
		die("COUNT must be 1-%u here%s", max, lba48 ? "" : " (more with --lba48)");
	if (!lba48 && lba + count > (1ull << 28))
		die("LBA %" PRIu64 "+%u needs --lba48", lba, count);
	if (lba48 && lba + count > (1ull << 48))
		die("LBA beyond 48 bits");
	if (dma && !ctl.bm_base)
		die("%s has no bus-master BAR4 (prog-if 0x%02x, BAR4 0x%08x)", ctl.f.bdf, ctl.progif, ctl.bar[4]);
}

/* Transfer count as the task file wants it (256 / 65536 are written as 0). */
static uint32_t tf_count(unsigned count)
{
	return count & 0xffff;
}

/* PIO or DMA read/write of count sectors between buf and the disk. */
struct io_ctx {
	struct dmamem prdt;
	struct dmamem data;
	bool ready;
};

static void io_ctx_init(struct io_ctx *x, unsigned max_sectors)
{
	if (x->ready)
		return;
	dma_alloc(&x->prdt, 1, DMA_LIMIT);
	dma_alloc(&x->data, ((size_t)max_sectors * SECTOR + PAGE - 1) / PAGE, DMA_LIMIT);
	x->ready = true;
}

static void do_rw(struct io_ctx *x, const struct chan *c, bool write, bool dma, bool lba48, uint64_t lba,
    unsigned count, uint8_t *buf, struct outcome *o)
{
	memset(o, 0, sizeof *o);
	size_t bytes = (size_t)count * SECTOR;
	if (dma) {
		io_ctx_init(x, count);
		if (write)
			memcpy(x->data.va, buf, bytes);
		else
			memset(x->data.va, 0, bytes);
		prd_fill((volatile struct prd *)x->prdt.va, &x->data, bytes);
		dma_command(c, c->bm, rw_command(write, true, lba48), tf_count(count), lba, lba48,
		    (uint32_t)x->prdt.pa[0], !write, o, NULL, NULL);
		if (!write)
			memcpy(buf, x->data.va, bytes);
	} else {
		pio_transfer(c, rw_command(write, false, lba48), 0, tf_count(count), lba, lba48, buf, count, !write, o);
	}
}

/* ---- argument parsing ---- */

struct opts {
	bool pio, dma, lba48, write, read, keep, nolock, mixed, in_dir, out_dir;
	const char *out, *in, *pattern, *via;
	long iters;
	uint64_t lba;
	bool lba_set;
	const char *native_cmd, *native_ctl;
};

/* Fills buf (count sectors) from --pattern HEX|lba or --in FILE. */
static void fill_data(uint8_t *buf, unsigned count, uint64_t lba, const struct opts *op)
{
	size_t bytes = (size_t)count * SECTOR;
	if (op->in) {
		int fd = open(op->in, O_RDONLY);
		if (fd < 0)
			die("%s: %s", op->in, strerror(errno));
		size_t got = 0;
		while (got < bytes) {
			ssize_t r = read(fd, buf + got, bytes - got);
			if (r < 0)
				die("%s: %s", op->in, strerror(errno));
			if (r == 0)
				break;
			got += (size_t)r;
		}
		close(fd);
		if (got < bytes)
			die("%s holds %zu bytes, fewer than %zu", op->in, got, bytes);
		return;
	}
	if (!op->pattern)
		die("write needs --pattern HEX|lba or --in FILE");
	if (strcmp(op->pattern, "lba") == 0) {
		for (unsigned s = 0; s < count; s++)
			for (unsigned i = 0; i < SECTOR; i += 8) {
				uint64_t v = lba + s;
				memcpy(buf + (size_t)s * SECTOR + i, &v, 8);
			}
		return;
	}
	uint8_t pat[SECTOR];
	size_t n = 0;
	const char *p = op->pattern;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	if (!*p || strlen(p) % 2 || strlen(p) / 2 > sizeof pat)
		die("--pattern wants an even number of hex digits (at most %d bytes) or 'lba'", SECTOR);
	for (; p[0] && p[1]; p += 2) {
		char b[3] = { p[0], p[1], 0 };
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
			die("bad hex in --pattern");
		pat[n++] = (uint8_t)strtoul(b, NULL, 16);
	}
	for (size_t i = 0; i < bytes; i++)
		buf[i] = pat[i % n];
}

/* An argument that is 0 or 1; else `meaning` and the usage. */
static int bit_arg(const char *s, const char *what, const char *meaning)
{
	uint64_t v = num(s, what);
	if (v > 1) {
		fprintf(stderr, "ataatk: %s\n", meaning);
		usage();
	}
	return (int)v;
}

static int chan_arg(const char *s)
{
	return bit_arg(s, "channel", "CH is 0 (primary) or 1 (secondary)");
}

static int pos_arg(const char *s)
{
	return bit_arg(s, "position", "POS is 0 (master) or 1 (slave)");
}

/* ---- commands ---- */

static void cmd_info(void)
{
	uint16_t pcicmd = (uint16_t)cfg_read(4, 2);
	result("result=ok op=info bdf=%s vendor=0x%04x device=0x%04x progif=0x%02x command=0x%04x bar4=0x%08x "
	       "ch0=0x%x/0x%x ch1=0x%x/0x%x bm=0x%x driver=%s",
	    ctl.f.bdf, ctl.vendor, ctl.device, ctl.progif, pcicmd, ctl.bar[4], ctl.cmd_base[0], ctl.ctl_base[0],
	    ctl.cmd_base[1], ctl.ctl_base[1], ctl.bm_base, ctl.f.driver[0] ? ctl.f.driver : "none");
}

static void ata_string(const uint16_t *id, int from, int words, char *out)
{
	int n = 0;
	for (int i = 0; i < words; i++) {
		out[n++] = (char)(id[from + i] >> 8);
		out[n++] = (char)(id[from + i] & 0xff);
	}
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == 0))
		n--;
	out[n] = 0;
	int start = 0;
	while (out[start] == ' ')
		start++;
	memmove(out, out + start, (size_t)(n - start + 1));
	for (char *p = out; *p; p++)
		if (*p == ' ' || !isprint((unsigned char)*p))
			*p = '_';
	if (!out[0])
		strcpy(out, "-");
}

static void cmd_identify(int ch, int pos)
{
	struct chan c = channel(ch, pos);
	struct outcome o = { 0 };
	uint16_t id[256];
	unsigned got = pio_transfer(&c, CMD_IDENTIFY, 0, 0, 0, false, (uint8_t *)id, 1, true, &o);
	if (got != 1) {
		uint8_t mid = inb(c.cmd + ATA_LBA_MID), hi = inb(c.cmd + ATA_LBA_HI);
		const char *what = verdict(&o);
		if ((o.status & ST_ERR) && mid == 0x14 && hi == 0xeb)
			what = "atapi";
		result("result=%s op=identify ch=%d pos=%d signature=0x%02x%02x %s", what, ch, pos, hi, mid, regs(&o));
		return;
	}
	char model[48], serial[24], fw[12];
	ata_string(id, 27, 20, model);
	ata_string(id, 10, 10, serial);
	ata_string(id, 23, 4, fw);
	uint32_t sectors28 = (uint32_t)id[60] | (uint32_t)id[61] << 16;
	uint64_t sectors48 = (uint64_t)id[100] | (uint64_t)id[101] << 16 | (uint64_t)id[102] << 32 |
			     (uint64_t)id[103] << 48;
	bool lba48 = id[83] & (1 << 10);
	result("result=%s op=identify ch=%d pos=%d model=%s serial=%s firmware=%s sectors=%" PRIu32
	       " lba48=%d sectors48=%" PRIu64
	       " dma=%d mwdma=0x%02x udma=0x%02x mwdma_on=0x%02x udma_on=0x%02x pio=0x%02x %s",
	    verdict(&o), ch, pos, model, serial, fw, sectors28, lba48, lba48 ? sectors48 : 0, !!(id[49] & (1 << 8)),
	    id[63] & 0x7, id[88] & 0x7f, (id[63] >> 8) & 0x7, (id[88] >> 8) & 0x7f, id[64] & 0xff, regs(&o));
}

static void need_mode(const struct opts *op)
{
	if (op->pio == op->dma)
		die("say --pio or --dma");
}

/* read: the SHA-256 of what came in (and --out FILE); write: of what went out. */
static void cmd_rw(int ch, int pos, uint64_t lba, unsigned count, bool write, const struct opts *op)
{
	need_mode(op);
	check_range(lba, count, op->lba48, op->dma);
	struct chan c = channel(ch, pos);
	struct io_ctx x = { 0 };
	struct outcome o;
	size_t bytes = (size_t)count * SECTOR;
	uint8_t *buf = xmalloc(bytes);
	char sha[65];
	if (write) {
		fill_data(buf, count, lba, op);
		sha256_hex(buf, bytes, sha);
	}
	do_rw(&x, &c, write, op->dma, op->lba48, lba, count, buf, &o);
	if (!write) {
		sha256_hex(buf, bytes, sha);
		if (op->out)
			write_file(op->out, buf, bytes);
	}
	result("result=%s op=%s mode=%s ch=%d pos=%d lba=%" PRIu64 " count=%u lba48=%d sha256=%s first=%s %s",
	    verdict(&o), write ? "write" : "read", op->dma ? "dma" : "pio", ch, pos, lba, count, op->lba48, sha,
	    first_hex(buf, 16), regs(&o));
}

static void cmd_flush(int ch, int pos, const struct opts *op)
{
	struct chan c = channel(ch, pos);
	struct outcome o = { 0 };
	if (select_device(&c, &o)) {
		issue(&c, op->lba48 ? CMD_FLUSH_CACHE_EXT : CMD_FLUSH_CACHE, 0, 0, 0, op->lba48);
		finish(&c, &o);
	}
	result("result=%s op=flush ch=%d pos=%d %s", verdict(&o), ch, pos, regs(&o));
}

static void cmd_reset(int ch)
{
	struct chan c = channel(ch, 0);
	struct outcome o = { 0 };
	uint8_t dc = opt_irq ? 0 : DC_NIEN;
	outb(dc | DC_SRST, c.ctl);
	usleep(10);
	outb(dc, c.ctl);
	usleep(2000);
	if (wait_not_busy(&c) < 0) {
		o.timeout = true;
		o.stage = "reset";
	}
	o.status = altstat(&c);
	o.error = inb(c.cmd + ATA_ERROR); /* diagnostic code after a reset */
	result("result=%s op=reset ch=%d %s", o.timeout ? "timeout" : "ok", ch, regs(&o));
}

/* Commands known to move data to the device (PIO data-out), and from it. */
static bool is_data_out(uint8_t op, uint16_t features)
{
	switch (op) {
	case 0x30:
	case 0x31:
	case 0x34:
	case 0x39:
	case 0x3b:
	case 0x3f:
	case 0xc5:
	case 0xe8: /* WRITE BUFFER */
	case 0x92: /* DOWNLOAD MICROCODE */
	case 0x5e: /* TRUSTED SEND */
	case 0xf1:
	case 0xf2:
	case 0xf4:
	case 0xf6: /* SECURITY SET PASSWORD, UNLOCK, ERASE UNIT, DISABLE PASSWORD */
		return true;
	case 0xb0: /* SMART WRITE LOG */
		return (features & 0xff) == 0xd6;
	default:
		return false;
	}
}

static void cmd_cmd(int ch, int pos, uint8_t opcode, uint16_t features, uint32_t count, uint64_t lba,
    const struct opts *op)
{
	struct chan c = channel(ch, pos);
	struct outcome o = { 0 };
	bool out = op->out_dir || (!op->in_dir && is_data_out(opcode, features));
	unsigned blocks = 0;
	bool drq = false;
	uint8_t sector[SECTOR];
	struct opts fill = *op;
	if (!fill.pattern && !fill.in)
		fill.pattern = "00";
	if (out)
		fill_data(sector, 1, lba, &fill);
	if (select_device(&c, &o)) {
		issue(&c, opcode, features, count, lba, op->lba48);
		delay400ns(&c);
		for (unsigned i = 0; i < 256; i++) {
			int s = wait_not_busy(&c);
			if (s < 0) {
				o.timeout = true;
				o.stage = "busy";
				break;
			}
			if (!(s & ST_DRQ) || (s & (ST_ERR | ST_DF)))
				break;
			drq = true; /* feed or drain whole blocks while the device asks, 256 at most */
			if (out)
				out_words(c.cmd + ATA_DATA, sector, SECTOR / 2);
			else
				in_words(c.cmd + ATA_DATA, sector, SECTOR / 2);
			blocks++;
			delay400ns(&c);
		}
		finish(&c, &o);
	}
	result("result=%s op=cmd ch=%d pos=%d opcode=0x%02x features=0x%04x count=%u lba=0x%" PRIx64
	       " drq=%d dir=%s blocks=%u %s",
	    verdict(&o), ch, pos, opcode, features, count, lba, drq, out ? "out" : "in", blocks, regs(&o));
}

/* Sectors of buf that are entirely `byte`. */
static unsigned count_filled(const uint8_t *buf, unsigned sectors, uint8_t byte, bool *each)
{
	unsigned n = 0;
	for (unsigned s = 0; s < sectors; s++) {
		bool all = true;
		for (unsigned i = 0; i < SECTOR && all; i++)
			all = buf[(size_t)s * SECTOR + i] == byte;
		if (each)
			each[s] = all;
		n += all;
	}
	return n;
}

/* PIO helpers for the attacks' setup and check steps, in pieces of at most 256 sectors. */
static bool pio_chunks(const struct chan *c, bool write, uint64_t lba, unsigned count, bool lba48, uint8_t *buf)
{
	struct io_ctx none = { 0 };
	struct outcome o;
	for (unsigned done = 0; done < count;) {
		unsigned n = count - done < 256 ? count - done : 256;
		do_rw(&none, c, write, false, lba48, lba + done, n, buf + (size_t)done * SECTOR, &o);
		if (strcmp(verdict(&o), "ok") != 0)
			return false;
		done += n;
	}
	return true;
}

static bool pio_fill(const struct chan *c, uint64_t lba, unsigned count, bool lba48, uint8_t byte)
{
	uint8_t *buf = xmalloc((size_t)count * SECTOR);
	memset(buf, byte, (size_t)count * SECTOR);
	bool ok = pio_chunks(c, true, lba, count, lba48, buf);
	free(buf);
	return ok;
}

static bool pio_read(const struct chan *c, uint64_t lba, unsigned count, bool lba48, uint8_t *buf)
{
	return pio_chunks(c, false, lba, count, lba48, buf);
}

#define FILL_DISK 0xc3 /* what the sectors held before an attack */
#define FILL_MEM 0xee  /* what our own buffers held before a DMA read */
#define PATTERN_A 0xa5
#define PATTERN_B 0x5b

static void cmd_prd_at(const char *where, int ch, int pos, uint64_t lba, unsigned count, const struct opts *op)
{
	check_range(lba, count, op->lba48, true);
	struct chan c = channel(ch, pos);
	bool self = strcmp(where, "self") == 0;
	uint64_t addr = self ? 0 : num(where, "PHYSADDR");
	size_t bytes = (size_t)count * SECTOR;
	if (!self && addr + bytes > 0x100000000ull)
		die("PHYSADDR+length must be below 4 GiB (PRD addresses are 32-bit)");
	struct dmamem prdt, own = { 0 };
	dma_alloc(&prdt, 1, DMA_LIMIT);
	volatile struct prd *t = (volatile struct prd *)prdt.va;
	if (self) {
		dma_alloc(&own, (bytes + PAGE - 1) / PAGE, DMA_LIMIT);
		prd_fill(t, &own, bytes);
		addr = own.pa[0];
	} else {
		prd_fill_phys(t, addr, bytes);
	}
	uint8_t *disk = xmalloc(bytes), *mem = xmalloc(bytes), *after = xmalloc(bytes);
	char disk_sha[65], mem_sha[65] = "-", after_sha[65] = "-";
	struct outcome o = { 0 };
	const char *landed = "-", *memstate = "-";
	bool mem_ok;

	if (!op->write) {
		/* Device -> memory at addr: does the disk's data appear there? */
		if (!pio_read(&c, lba, count, op->lba48, disk))
			die("reading LBA %" PRIu64 " by PIO before the attack failed", lba);
		if (self)
			memset(own.va, FILL_MEM, bytes);
		mem_ok = self ? (memcpy(mem, own.va, bytes), true) : devmem_read(addr, bytes, mem);
		dma_command(&c, c.bm, rw_command(false, true, op->lba48), tf_count(count), lba, op->lba48,
		    (uint32_t)prdt.pa[0], true, &o, NULL, NULL);
		bool after_ok = self ? (memcpy(after, own.va, bytes), true) : devmem_read(addr, bytes, after);
		if (!mem_ok || !after_ok)
			memstate = "unreadable";
		else if (memcmp(after, disk, bytes) == 0)
			memstate = memcmp(mem, disk, bytes) == 0 ? "same-as-disk-before" : "disk-data";
		else
			memstate = memcmp(after, mem, bytes) == 0 ? "unchanged" : "other";
		if (mem_ok)
			sha256_hex(mem, bytes, mem_sha);
		if (after_ok)
			sha256_hex(after, bytes, after_sha);
		sha256_hex(disk, bytes, disk_sha);
		result("result=%s op=prd-at dir=read addr=0x%" PRIx64 " ch=%d pos=%d lba=%" PRIu64
		       " count=%u mem=%s disk_sha256=%s "
		       "mem_before_sha256=%s mem_after_sha256=%s %s",
		    verdict(&o), addr, ch, pos, lba, count, memstate, disk_sha, mem_sha, after_sha, regs(&o));
	} else {
		/* Memory at addr -> device: what lands in the sectors? */
		if (self)
			memset(own.va, PATTERN_A, bytes);
		mem_ok = self ? (memcpy(mem, own.va, bytes), true) : devmem_read(addr, bytes, mem);
		if (!pio_fill(&c, lba, count, op->lba48, FILL_DISK))
			die("prefilling LBA %" PRIu64 " by PIO failed", lba);
		dma_command(&c, c.bm, rw_command(true, true, op->lba48), tf_count(count), lba, op->lba48,
		    (uint32_t)prdt.pa[0], false, &o, NULL, NULL);
		if (!pio_read(&c, lba, count, op->lba48, disk))
			die("reading LBA %" PRIu64 " back by PIO failed", lba);
		if (count_filled(disk, count, FILL_DISK, NULL) == count)
			landed = "unchanged";
		else if (mem_ok && memcmp(disk, mem, bytes) == 0)
			landed = "memory";
		else if (count_filled(disk, count, 0, NULL) == count)
			landed = "zeros";
		else
			landed = "other";
		sha256_hex(disk, bytes, disk_sha);
		if (mem_ok)
			sha256_hex(mem, bytes, mem_sha);
		result("result=%s op=prd-at dir=write addr=0x%" PRIx64 " ch=%d pos=%d lba=%" PRIu64
		       " count=%u landed=%s "
		       "disk_sha256=%s mem_sha256=%s mem=%s %s",
		    verdict(&o), addr, ch, pos, lba, count, landed, disk_sha, mem_sha,
		    mem_ok ? "readable" : "unreadable", regs(&o));
	}
}

/* ---- races ---- */

struct racer {
	volatile struct prd *t;
	unsigned entries;
	struct dmamem *orig, *alt;
	size_t bytes;
	bool change_counts, scribble;
	int ready, go, stop; /* accessed with __atomic */
	unsigned long loops;
	int cpu;
};

/* One pass of the attack: every PRD entry at the other buffer (and other byte counts), the data overwritten. */
static void race_once(struct racer *r)
{
	for (unsigned i = 0; i < r->entries; i++) {
		r->t[i].addr = (uint32_t)r->alt->pa[i];
		if (r->change_counts)
			r->t[i].bytes = (uint16_t)((r->loops & 1) ? 512 : 0); /* 0 = 64 KiB */
	}
	if (r->scribble)
		memset(r->orig->va, PATTERN_B, r->bytes);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	r->loops++;
}

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	if (r->cpu >= 0)
		pin(r->cpu);
	__atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
			return NULL;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
		race_once(r);
	return NULL;
}

static bool threaded;

static void race_hook(void *arg)
{
	struct racer *r = arg;
	if (threaded) {
		__atomic_store_n(&r->go, 1, __ATOMIC_RELEASE);
		return;
	}
	/* One CPU: race right after the start, for about a millisecond. */
	uint64_t end = now_ms() + 2;
	do
		race_once(r);
	while (now_ms() < end);
}

static void cmd_prd_race(int ch, int pos, uint64_t lba, unsigned count, const struct opts *op)
{
	check_range(lba, count, op->lba48, true);
	struct chan c = channel(ch, pos);
	size_t bytes = (size_t)count * SECTOR, pages = (bytes + PAGE - 1) / PAGE;
	struct dmamem prdt, orig, alt;
	dma_alloc(&prdt, 1, DMA_LIMIT);
	dma_alloc(&orig, pages, DMA_LIMIT);
	dma_alloc(&alt, pages, DMA_LIMIT);
	struct racer r = { .t = (volatile struct prd *)prdt.va, .orig = &orig, .alt = &alt, .bytes = bytes, .cpu = -1 };
	r.entries = prd_fill(r.t, &orig, bytes);
	int cpus = ncpus();
	threaded = cpus > 1;
	pthread_t th;
	if (threaded) {
		pin(0);
		r.cpu = 1;
		if (pthread_create(&th, NULL, racer_main, &r) != 0)
			die("pthread_create failed");
		/* The racer spins on its CPU before the command starts. */
		uint64_t end = now_ms() + (uint64_t)timeout_ms;
		while (!__atomic_load_n(&r.ready, __ATOMIC_ACQUIRE))
			if (now_ms() > end)
				die("the racing thread did not start");
	}
	struct outcome o = { 0 };
	uint8_t *back = xmalloc(bytes);
	if (!op->read) {
		/* Write: A is in the buffers the PRDs name; B replaces buffers, pointers and counts. */
		r.change_counts = r.scribble = true;
		memset(orig.va, PATTERN_A, bytes);
		memset(alt.va, PATTERN_B, bytes);
		if (!pio_fill(&c, lba, count, op->lba48, FILL_DISK))
			die("prefilling LBA %" PRIu64 " by PIO failed", lba);
		dma_command(&c, c.bm, rw_command(true, true, op->lba48), tf_count(count), lba, op->lba48,
		    (uint32_t)prdt.pa[0], false, &o, race_hook, &r);
	} else {
		/* Read: the disk holds A; the PRDs are turned from orig to alt during the transfer. */
		memset(orig.va, 0, bytes);
		memset(alt.va, 0, bytes);
		if (!pio_fill(&c, lba, count, op->lba48, PATTERN_A))
			die("prefilling LBA %" PRIu64 " by PIO failed", lba);
		dma_command(&c, c.bm, rw_command(false, true, op->lba48), tf_count(count), lba, op->lba48,
		    (uint32_t)prdt.pa[0], true, &o, race_hook, &r);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	if (threaded)
		pthread_join(th, NULL);
	if (!op->read) {
		if (!pio_read(&c, lba, count, op->lba48, back))
			die("reading LBA %" PRIu64 " back by PIO failed", lba);
		unsigned a = count_filled(back, count, PATTERN_A, NULL), b = count_filled(back, count, PATTERN_B, NULL);
		unsigned old = count_filled(back, count, FILL_DISK, NULL), other = count - a - b - old;
		const char *landed = a == count       ? "A"
				     : b == count     ? "B"
				     : old == count   ? "old"
				     : other == count ? "other"
						      : "mixed";
		result("result=%s op=prd-race dir=write ch=%d pos=%d lba=%" PRIu64
		       " count=%u landed=%s sectors_a=%u sectors_b=%u "
		       "sectors_old=%u sectors_other=%u racer_loops=%lu cpus=%d %s",
		    verdict(&o), ch, pos, lba, count, landed, a, b, old, other, r.loops, cpus, regs(&o));
	} else {
		unsigned in_orig = count_filled(orig.va, count, PATTERN_A, NULL);
		unsigned in_alt = count_filled(alt.va, count, PATTERN_A, NULL);
		const char *landed = in_orig == count && in_alt == 0   ? "orig"
				     : in_alt == count && in_orig == 0 ? "alt"
				     : in_orig + in_alt == 0           ? "none"
								       : "mixed";
		result("result=%s op=prd-race dir=read ch=%d pos=%d lba=%" PRIu64
		       " count=%u landed=%s sectors_orig=%u sectors_alt=%u "
		       "racer_loops=%lu cpus=%d %s",
		    verdict(&o), ch, pos, lba, count, landed, in_orig, in_alt, r.loops, cpus, regs(&o));
	}
}

struct race2_thread {
	pthread_t th;
	int id;
	const struct chan *c;
	uint64_t lba;
	unsigned count;
	long iters;
	const struct opts *op;
	struct io_ctx x;
	unsigned long mismatches, errors, timeouts, ops;
};

static pthread_mutex_t chan_lock = PTHREAD_MUTEX_INITIALIZER;
static bool race2_locked = true;

static void stamp(uint8_t *buf, unsigned count, int id, long iter, uint64_t lba)
{
	for (unsigned s = 0; s < count; s++)
		for (unsigned i = 0; i < SECTOR; i += 16) {
			uint64_t w[2] = { 0x5041524150455400ull | (uint64_t)id,
				(uint64_t)iter << 32 | (uint32_t)(lba + s) };
			memcpy(buf + (size_t)s * SECTOR + i, w, 16);
		}
}

static void race2_io(struct race2_thread *t, bool write, bool dma, uint8_t *buf)
{
	struct outcome o;
	if (race2_locked)
		pthread_mutex_lock(&chan_lock);
	do_rw(&t->x, t->c, write, dma, t->op->lba48, t->lba, t->count, buf, &o);
	if (race2_locked)
		pthread_mutex_unlock(&chan_lock);
	t->ops++;
	if (o.timeout) {
		t->timeouts++;
		struct chan c = *t->c;
		/* Get the channel back for the next iteration. */
		if (race2_locked)
			pthread_mutex_lock(&chan_lock);
		outb((opt_irq ? 0 : DC_NIEN) | DC_SRST, c.ctl);
		usleep(10);
		outb(opt_irq ? 0 : DC_NIEN, c.ctl);
		usleep(2000);
		(void)wait_not_busy(&c);
		if (race2_locked)
			pthread_mutex_unlock(&chan_lock);
	} else if (ata_failed(&o)) {
		t->errors++;
	}
}

static void *race2_main(void *arg)
{
	struct race2_thread *t = arg;
	if (ncpus() > 1)
		pin(t->id);
	size_t bytes = (size_t)t->count * SECTOR;
	uint8_t *want = xmalloc(bytes), *got = xmalloc(bytes);
	for (long i = 0; i < t->iters; i++) {
		bool wdma, rdma;
		if (t->op->pio)
			wdma = rdma = false;
		else if (t->op->dma)
			wdma = rdma = true;
		else
			wdma = (i + t->id) % 2 == 0, rdma = !wdma; /* mixed: DMA write/PIO read, then the other way */
		stamp(want, t->count, t->id, i, t->lba);
		race2_io(t, true, wdma, want);
		memset(got, 0, bytes);
		race2_io(t, false, rdma, got);
		if (memcmp(want, got, bytes) != 0)
			t->mismatches++;
	}
	free(want);
	free(got);
	return NULL;
}

static void cmd_race2(int ch, int pos, uint64_t lba, unsigned count, const struct opts *op)
{
	bool need_dma = !op->pio;
	check_range(lba, 2 * count, op->lba48, need_dma);
	struct chan c = channel(ch, pos);
	race2_locked = !op->nolock;
	long iters = op->iters > 0 ? op->iters : 20;
	struct race2_thread t[2];
	memset(t, 0, sizeof t);
	for (int i = 0; i < 2; i++) {
		t[i].id = i;
		t[i].c = &c;
		t[i].lba = lba + (uint64_t)i * count;
		t[i].count = count;
		t[i].iters = iters;
		t[i].op = op;
		if (need_dma)
			io_ctx_init(&t[i].x, count);
	}
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i].th, NULL, race2_main, &t[i]) != 0)
			die("pthread_create failed");
	for (int i = 0; i < 2; i++)
		pthread_join(t[i].th, NULL);
	unsigned long mism = t[0].mismatches + t[1].mismatches, err = t[0].errors + t[1].errors;
	unsigned long tmo = t[0].timeouts + t[1].timeouts;
	result("result=%s op=race2 ch=%d pos=%d lba=%" PRIu64
	       " count=%u iters=%ld mode=%s locked=%d cpus=%d mismatches=%lu "
	       "errors=%lu timeouts=%lu ops=%lu",
	    mism || err || tmo ? "mismatch" : "ok", ch, pos, lba, count, iters,
	    op->pio   ? "pio"
	    : op->dma ? "dma"
		      : "mixed",
	    race2_locked, ncpus(), mism, err, tmo, t[0].ops + t[1].ops);
}

/* ---- BAR relocation ---- */

static uint32_t bar4_read(bool cf8)
{
	return cf8 ? cf8_read32(&ctl.f, 0x20) : cfg_read(0x20, 4);
}

static void bar4_write(bool cf8, uint32_t v)
{
	if (cf8)
		cf8_write32(&ctl.f, 0x20, v);
	else
		cfg_write(0x20, 4, v);
}

/* Moves BAR4 by one method, reads a sector by DMA through the new ports, restores. Appends key=value words. */
static void bar_move_via(bool cf8, int ch, int pos, uint32_t newbase, uint64_t lba, const struct opts *op, char *out,
    size_t n)
{
	const char *m = cf8 ? "cf8" : "sysfs";
	struct chan c = channel(ch, pos);
	uint32_t old = cfg_read(0x20, 4);
	uint8_t pio_buf[SECTOR], dma_buf[SECTOR];
	bool pio_ok = pio_read(&c, lba, 1, op->lba48, pio_buf);
	bar4_write(cf8, (newbase & 0xfffc) | 1);
	uint32_t rb = bar4_read(cf8), rb_sysfs = cfg_read(0x20, 4);
	struct chan moved = c;
	moved.bm = (uint16_t)((newbase & 0xfffc) + 8 * ch);
	uint16_t oldport = (uint16_t)((old & 0xfffc) + 8 * ch);
	uint8_t old_status = inb(oldport + BM_STATUS);
	struct io_ctx x = { 0 };
	struct outcome o;
	memset(dma_buf, 0, sizeof dma_buf);
	do_rw(&x, &moved, false, true, op->lba48, lba, 1, dma_buf, &o);
	bool match = pio_ok && memcmp(pio_buf, dma_buf, SECTOR) == 0;
	bool restored = false;
	if (!op->keep) {
		cfg_write(0x20, 4, old);
		restored = cfg_read(0x20, 4) == old;
	}
	size_t used = strlen(out);
	snprintf(out + used, n - used,
	    " %s_readback=0x%08x %s_sysfs_view=0x%08x %s_dma=%s %s_match=%s %s_oldport_status=0x%02x %s_status=0x%02x "
	    "%s_error=0x%02x %s_bm=0x%02x %s_restored=%d",
	    m, rb, m, rb_sysfs, m, verdict(&o), m, match ? "yes" : "no", m, old_status, m, o.status, m, o.error, m,
	    o.bm, m, restored);
}

static void cmd_bar_move(int ch, int pos, uint32_t newbase, const struct opts *op)
{
	if (!ctl.bm_base)
		die("%s has no bus-master BAR4", ctl.f.bdf);
	const char *via = op->via ? op->via : "both";
	bool sysfs = !strcmp(via, "sysfs") || !strcmp(via, "both"), cf8 = !strcmp(via, "cf8") || !strcmp(via, "both");
	if (!sysfs && !cf8)
		die("--via is sysfs, cf8 or both");
	uint64_t lba = op->lba_set ? op->lba : 0;
	char words[1024];
	snprintf(words, sizeof words, "old=0x%08x new=0x%08x", ctl.bar[4], (newbase & 0xfffc) | 1);
	if (sysfs)
		bar_move_via(false, ch, pos, newbase, lba, op, words, sizeof words);
	if (cf8)
		bar_move_via(true, ch, pos, newbase, lba, op, words, sizeof words);

	/* Native mode: only where prog-if says the channel's mode is programmable (PIIX: never). */
	const char *native = "-";
	if (op->native_cmd) {
		uint8_t progif = (uint8_t)cfg_read(9, 1);
		if (!(progif & (2 << (2 * ch)))) {
			native = "unsupported";
		} else {
			uint32_t cmdb = (uint32_t)num(op->native_cmd, "native command base");
			uint32_t ctlb = (uint32_t)num(op->native_ctl, "native control base");
			uint32_t b0 = cfg_read(0x10 + 8 * ch, 4), b1 = cfg_read(0x14 + 8 * ch, 4);
			cfg_write(0x10 + 8 * ch, 4, (cmdb & 0xfff8) | 1);
			cfg_write(0x14 + 8 * ch, 4, (ctlb & 0xfffc) | 1);
			cfg_write(9, 1, progif | (1 << (2 * ch)));
			uint8_t now = (uint8_t)cfg_read(9, 1);
			struct chan nc = channel(ch, pos);
			nc.cmd = (uint16_t)(cmdb & 0xfff8);
			nc.ctl = (uint16_t)((ctlb & 0xfffc) + 2);
			struct outcome o = { 0 };
			uint8_t buf[SECTOR];
			pio_transfer(&nc, CMD_IDENTIFY, 0, 0, 0, false, buf, 1, true, &o);
			native = (now & (1 << (2 * ch)))
				     ? (strcmp(verdict(&o), "ok") == 0 ? "identify-ok" : "identify-failed")
				     : "refused";
			if (!op->keep) {
				cfg_write(9, 1, progif);
				cfg_write(0x10 + 8 * ch, 4, b0);
				cfg_write(0x14 + 8 * ch, 4, b1);
			}
		}
	}
	result("result=ok op=bar-move ch=%d pos=%d %s native=%s", ch, pos, words, native);
}

/* ---- main ---- */

static void usage(void)
{
	fputs("usage: ataatk [--dev BDF] [--unbind] [--timeout MS] [--irq] COMMAND ...\n"
	      "  info | unbind | bind [DRIVER]\n"
	      "  identify CH POS\n"
	      "  read  CH POS LBA COUNT --pio|--dma [--lba48] [--out FILE]\n"
	      "  write CH POS LBA COUNT --pio|--dma [--lba48] --pattern HEX|lba | --in FILE\n"
	      "  flush CH POS [--lba48]          reset CH\n"
	      "  prd-at PHYSADDR|self CH POS LBA COUNT [--write] [--lba48]\n"
	      "  prd-race CH POS LBA COUNT [--read] [--lba48]\n"
	      "  bar-move CH POS NEWBASE [--via sysfs|cf8|both] [--keep] [--lba LBA] [--native CMD CTL]\n"
	      "  cmd CH POS OPCODE [FEATURES] [COUNT] [LBA] [--lba48] [--out-data|--in-data] [--pattern HEX]\n"
	      "  race2 CH POS LBA COUNT [--iters N] [--pio|--dma] [--nolock] [--lba48]\n"
	      "CH 0/1 = primary/secondary, POS 0/1 = master/slave. See docs/guest.md.\n",
	    stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts op = { 0 };
	const char *pos[8];
	int npos = 0;
	bool unbind = false;
	atk_name = "ataatk";
	atk_usage = usage;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (atk_common_option(argc, argv, &i, &opt_dev, &unbind))
			continue;
		if (!strcmp(a, "--irq"))
			opt_irq = true;
		else if (!strcmp(a, "--pio"))
			op.pio = true;
		else if (!strcmp(a, "--dma"))
			op.dma = true;
		else if (!strcmp(a, "--lba48"))
			op.lba48 = true;
		else if (!strcmp(a, "--write"))
			op.write = true;
		else if (!strcmp(a, "--read"))
			op.read = true;
		else if (!strcmp(a, "--keep"))
			op.keep = true;
		else if (!strcmp(a, "--nolock"))
			op.nolock = true;
		else if (!strcmp(a, "--out-data"))
			op.out_dir = true;
		else if (!strcmp(a, "--in-data"))
			op.in_dir = true;
		else if (!strcmp(a, "--out")) {
			op.out = atk_value(argc, argv, &i);
		} else if (!strcmp(a, "--in")) {
			op.in = atk_value(argc, argv, &i);
		} else if (!strcmp(a, "--pattern")) {
			op.pattern = atk_value(argc, argv, &i);
		} else if (!strcmp(a, "--via")) {
			op.via = atk_value(argc, argv, &i);
		} else if (!strcmp(a, "--iters")) {
			op.iters = (long)num(atk_value(argc, argv, &i), "iterations");
		} else if (!strcmp(a, "--lba")) {
			op.lba = num(atk_value(argc, argv, &i), "LBA");
			op.lba_set = true;
		} else if (!strcmp(a, "--native")) {
			op.native_cmd = atk_value(argc, argv, &i);
			if (i + 1 >= argc)
				usage();
			op.native_ctl = argv[++i];
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			usage();
		else if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "ataatk: unknown option %s\n", a);
			usage();
		} else if (npos < 8)
			pos[npos++] = a;
		else
			usage();
	}
	if (npos < 1)
		usage();
	const char *cmd = pos[0];
#define ARGS(n)                     \
	do {                        \
		if (npos < (n) + 1) \
			usage();    \
	} while (0)

	if (!strcmp(cmd, "bind")) {
		find_controller();
		char p[PATH_MAX];
		const char *drv = npos > 1 ? pos[1] : "ata_piix";
		if (ctl.f.driver[0]) {
			result("result=ok op=bind bdf=%s driver=%s already=1", ctl.f.bdf, ctl.f.driver);
			return 0;
		}
		snprintf(p, sizeof p, "/sys/bus/pci/drivers/%s/bind", drv);
		int r = write_text(p, ctl.f.bdf);
		result("result=%s op=bind bdf=%s driver=%s%s%s", r == 0 ? "ok" : "error", ctl.f.bdf, drv,
		    r ? " errno=" : "", r ? strerror(errno) : "");
		return 0;
	}
	if (!strcmp(cmd, "unbind")) {
		find_controller();
		const char *was = ctl.f.driver[0] ? strdup(ctl.f.driver) : "none";
		unbind_driver();
		result("result=ok op=unbind bdf=%s driver=%s", ctl.f.bdf, was);
		return 0;
	}
	if (!strcmp(cmd, "info")) {
		find_controller();
		if (unbind)
			unbind_driver();
		cmd_info();
		return 0;
	}

	if (!strcmp(cmd, "identify")) {
		ARGS(2);
		int ch = chan_arg(pos[1]), p = pos_arg(pos[2]);
		prepare_controller(unbind);
		cmd_identify(ch, p);
	} else if (!strcmp(cmd, "read") || !strcmp(cmd, "write") || !strcmp(cmd, "prd-race") || !strcmp(cmd, "race2")) {
		/* CH POS LBA COUNT */
		ARGS(4);
		int ch = chan_arg(pos[1]), p = pos_arg(pos[2]);
		uint64_t lba = num(pos[3], "LBA");
		unsigned count = (unsigned)num(pos[4], "COUNT");
		prepare_controller(unbind);
		if (!strcmp(cmd, "prd-race"))
			cmd_prd_race(ch, p, lba, count, &op);
		else if (!strcmp(cmd, "race2"))
			cmd_race2(ch, p, lba, count, &op);
		else
			cmd_rw(ch, p, lba, count, cmd[0] == 'w', &op);
	} else if (!strcmp(cmd, "flush")) {
		ARGS(2);
		int ch = chan_arg(pos[1]), p = pos_arg(pos[2]);
		prepare_controller(unbind);
		cmd_flush(ch, p, &op);
	} else if (!strcmp(cmd, "reset")) {
		ARGS(1);
		int ch = chan_arg(pos[1]);
		prepare_controller(unbind);
		cmd_reset(ch);
	} else if (!strcmp(cmd, "prd-at")) {
		ARGS(5);
		int ch = chan_arg(pos[2]), p = pos_arg(pos[3]);
		uint64_t lba = num(pos[4], "LBA");
		unsigned count = (unsigned)num(pos[5], "COUNT");
		prepare_controller(unbind);
		cmd_prd_at(pos[1], ch, p, lba, count, &op);
	} else if (!strcmp(cmd, "bar-move")) {
		ARGS(3);
		int ch = chan_arg(pos[1]), p = pos_arg(pos[2]);
		uint32_t base = (uint32_t)num(pos[3], "NEWBASE");
		if (base > 0xfff8 || base < 0x400)
			die("NEWBASE must be an I/O port base in 0x400-0xfff8");
		prepare_controller(unbind);
		cmd_bar_move(ch, p, base, &op);
	} else if (!strcmp(cmd, "cmd")) {
		ARGS(3);
		int ch = chan_arg(pos[1]), p = pos_arg(pos[2]);
		uint64_t opcode = num(pos[3], "OPCODE");
		uint64_t features = npos > 4 ? num(pos[4], "FEATURES") : 0;
		uint64_t count = npos > 5 ? num(pos[5], "COUNT") : 0;
		uint64_t lba = npos > 6 ? num(pos[6], "LBA") : 0;
		if (opcode > 0xff || features > 0xffff || count > 0xffff)
			die("OPCODE is a byte, FEATURES and COUNT 16-bit");
		prepare_controller(unbind);
		cmd_cmd(ch, p, (uint8_t)opcode, (uint16_t)features, (uint32_t)count, lba, &op);
	} else {
		fprintf(stderr, "ataatk: unknown command %s\n", cmd);
		usage();
	}
	return 0;
}
