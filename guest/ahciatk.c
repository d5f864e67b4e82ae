/*
 * ahciatk: drives one port of an AHCI controller (q35's ICH9 at 00:1f.2) straight from
 * userspace, as root, for Parapet's AHCI attack tests (docs/guest.md). Written from the
 * Serial ATA AHCI 1.3.1 specification (HBA registers, command list, command table, received
 * FIS) and ATA/ATAPI-8 ACS (commands, NCQ).
 *
 *   ahciatk [--dev BDF] [--unbind] [--timeout MS] COMMAND ARGS...
 *
 * The controller's registers (ABAR, BAR5) are mapped through /dev/mem (or the sysfs resource5
 * file). Command list, received-FIS area, command tables and buffers are locked pages of this
 * process (physical addresses from /proc/self/pagemap). Every command prints one result line
 * "ahciatk: result=R op=... key=value ..." and exits 0 when the operation ran, whatever the
 * device or a hypervisor did (R: ok, aborted = task-file error with ABRT, error, timeout);
 * exit status 1 is a tool error, 2 a usage error. Every wait has a timeout (default 10 s).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/atk.h"

/* ---- HBA registers (AHCI 1.3.1 section 3) ---- */
#define HBA_CAP 0x00
#define HBA_GHC 0x04
#define HBA_IS 0x08
#define HBA_PI 0x0c
#define HBA_VS 0x10
#define GHC_HR (1u << 0)
#define GHC_IE (1u << 1)
#define GHC_AE (1u << 31)
#define CAP_SNCQ (1u << 30)
#define CAP_S64A (1u << 31)

#define PX(p, r) (0x100 + (p)*0x80 + (r))
#define PX_CLB 0x00
#define PX_CLBU 0x04
#define PX_FB 0x08
#define PX_FBU 0x0c
#define PX_IS 0x10
#define PX_IE 0x14
#define PX_CMD 0x18
#define PX_TFD 0x20
#define PX_SIG 0x24
#define PX_SSTS 0x28
#define PX_SCTL 0x2c
#define PX_SERR 0x30
#define PX_SACT 0x34
#define PX_CI 0x38
#define CMD_ST (1u << 0)
#define CMD_SUD (1u << 1)
#define CMD_POD (1u << 2)
#define CMD_FRE (1u << 4)
#define CMD_FR (1u << 14)
#define CMD_CR (1u << 15)
#define IS_TFES (1u << 30)
#define IS_FATAL 0x78000000u /* TFES, HBFS, HBDS, IFS */
#define TFD_BSY 0x80
#define TFD_DRQ 0x08
#define TFD_ERR 0x01
#define ERR_ABRT 0x04

/* ---- ATA commands ---- */
#define ATA_READ_DMA_EXT 0x25
#define ATA_WRITE_DMA_EXT 0x35
#define ATA_READ_FPDMA 0x60
#define ATA_WRITE_FPDMA 0x61
#define ATA_IDENTIFY 0xec
#define ATA_DSM 0x06

#define SECTOR 512
#define PAGE 4096
#define SLOTS 32
#define PRDS_PER_TABLE ((PAGE - 0x80) / 16)
#define MAX_SECTORS (PRDS_PER_TABLE * (PAGE / SECTOR))
#define FILL_DISK 0xc3
#define FILL_MEM 0xee
#define PATTERN_A 0xa5
#define PATTERN_B 0x5b

static struct pcifn fn;
static const char *opt_dev;
static volatile uint32_t *abar;
static uint64_t abar_phys;
static uint32_t cap;
static uint16_t idp_port;       /* BAR4's I/O base, for --idp */
static unsigned idp_off = 0x10; /* QEMU's ICH9: index at BAR4 + 0x10, data at + 0x14 */
static bool via_idp;            /* register accesses through the index/data pair */

static void usage(void) __attribute__((noreturn));

/* ---- register access ---- */

static uint32_t rd(unsigned off)
{
	if (via_idp) {
		outl(off, idp_port + idp_off);
		return inl(idp_port + idp_off + 4);
	}
	return abar[off / 4];
}

static void wr(unsigned off, uint32_t v)
{
	if (via_idp) {
		outl(off, idp_port + idp_off);
		outl(v, idp_port + idp_off + 4);
		return;
	}
	abar[off / 4] = v;
	__sync_synchronize();
}

static void map_abar(uint64_t phys)
{
	volatile void *p = devmem_map(phys, PAGE);
	if (!p) {
		char path[256];
		snprintf(path, sizeof path, "%s/resource5", fn.path);
		int fd = open(path, O_RDWR | O_SYNC);
		if (fd >= 0) {
			void *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			close(fd);
			if (q != MAP_FAILED && phys == (pci_cfg_read(&fn, 0x24, 4) & ~0xfu))
				p = q;
		}
	}
	if (!p)
		die("cannot map the ABAR at 0x%" PRIx64 " (/dev/mem and %s/resource5)", phys, fn.path);
	abar = p;
	abar_phys = phys;
}

static void prepare(bool unbind)
{
	if (!pci_find(&fn, opt_dev, 0x010601, 0xffffff))
		die("no AHCI controller (PCI class 01:06:01)%s%s", opt_dev ? " at " : "", opt_dev ? opt_dev : "");
	if (unbind)
		pci_unbind(&fn);
	else if (fn.driver[0])
		die("%s is bound to %s (pass --unbind, or boot with modprobe.blacklist=ahci)", fn.bdf, fn.driver);
	uint16_t cmd = (uint16_t)pci_cfg_read(&fn, 4, 2);
	if ((cmd & 7) != 7) /* I/O, memory, bus master */
		pci_cfg_write(&fn, 4, 2, cmd | 7);
	uint32_t bar4 = pci_cfg_read(&fn, 0x20, 4);
	idp_port = (bar4 & 1) ? (uint16_t)(bar4 & 0xfffc) : 0;
	need_io();
	map_abar(pci_cfg_read(&fn, 0x24, 4) & ~0xfu);
	wr(HBA_GHC, rd(HBA_GHC) | GHC_AE);
	wr(HBA_GHC, (rd(HBA_GHC) | GHC_AE) & ~GHC_IE);
	cap = rd(HBA_CAP);
}

/* ---- the port's memory: command list, received FIS, one command table page per slot ---- */

struct hdr {
	uint32_t dw0; /* CFL 4:0, A 5, W 6, P 7, R 8, B 9, C 10, PMP 15:12, PRDTL 31:16 */
	uint32_t prdbc;
	uint32_t ctba, ctbau;
	uint32_t rsv[4];
};

struct prd {
	uint32_t dba, dbau, rsv, dbc; /* dbc: byte count - 1 (21:0), I (31) */
};

struct port {
	int no;
	struct dmamem cl;  /* page 0: command list (1 KiB) and received FIS at 0x400 */
	struct dmamem ct;  /* one page per slot: 0x40 CFIS, 0x80 PRD table */
	struct dmamem alt; /* a second command list page (clb-move, idp) */
};

static struct port P;

static volatile struct hdr *header(struct dmamem *cl, int slot)
{
	return (volatile struct hdr *)(cl->va) + slot;
}

static volatile uint8_t *cfis(int slot)
{
	return P.ct.va + (size_t)slot * PAGE;
}

static volatile struct prd *prdt(int slot)
{
	return (volatile struct prd *)(P.ct.va + (size_t)slot * PAGE + 0x80);
}

static int wait_clear(unsigned off, uint32_t bits)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while (rd(off) & bits)
		if (now_ms() > end)
			return -1;
		else
			usleep(100);
	return 0;
}

static int port_stop(void)
{
	int p = P.no;
	wr(PX(p, PX_CMD), rd(PX(p, PX_CMD)) & ~CMD_ST);
	if (wait_clear(PX(p, PX_CMD), CMD_CR) < 0)
		return -1;
	wr(PX(p, PX_CMD), rd(PX(p, PX_CMD)) & ~CMD_FRE);
	return wait_clear(PX(p, PX_CMD), CMD_FR);
}

static void set_clb(uint64_t clb, uint64_t fb)
{
	int p = P.no;
	wr(PX(p, PX_CLB), (uint32_t)clb);
	wr(PX(p, PX_CLBU), (uint32_t)(clb >> 32));
	wr(PX(p, PX_FB), (uint32_t)fb);
	wr(PX(p, PX_FBU), (uint32_t)(fb >> 32));
}

/* Waits for a device on the port and an idle task file; 0, or -1 after the timeout. */
static int port_ready(void)
{
	int p = P.no;
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while ((rd(PX(p, PX_SSTS)) & 0xf) != 3 || (rd(PX(p, PX_TFD)) & (TFD_BSY | TFD_DRQ)))
		if (now_ms() > end)
			return -1;
		else
			usleep(1000);
	return 0;
}

/* Stops the port, points it at our command list and FIS area (or the alternate list), starts it. */
static int port_start_at(uint64_t clb)
{
	int p = P.no;
	if (port_stop() < 0)
		return -1;
	set_clb(clb, P.cl.pa[0] + 0x400);
	wr(PX(p, PX_SERR), 0xffffffff);
	wr(PX(p, PX_IS), 0xffffffff);
	wr(PX(p, PX_IE), 0);
	wr(PX(p, PX_CMD), rd(PX(p, PX_CMD)) | CMD_FRE | CMD_SUD | CMD_POD);
	if (port_ready() < 0)
		return -1;
	wr(PX(p, PX_CMD), rd(PX(p, PX_CMD)) | CMD_ST);
	return 0;
}

static void port_init(int no)
{
	P.no = no;
	if (no < 0 || no > 31 || !(rd(HBA_PI) & (1u << no)))
		die("port %d is not implemented (PI=0x%08x)", no, rd(HBA_PI));
	uint64_t limit = (cap & CAP_S64A) ? 0 : 0x100000000ull;
	dma_alloc(&P.cl, 1, limit);
	dma_alloc(&P.ct, SLOTS, limit);
	dma_alloc(&P.alt, 1, limit);
	if (port_start_at(P.cl.pa[0]) < 0)
		die("port %d: no device ready (SSTS=0x%x TFD=0x%x)", no, rd(PX(no, PX_SSTS)), rd(PX(no, PX_TFD)));
}

/* Clears an error: stop, clear SERR/IS, COMRESET when the device stays busy, start again. */
static void port_recover(void)
{
	int p = P.no;
	port_stop();
	wr(PX(p, PX_SERR), 0xffffffff);
	wr(PX(p, PX_IS), 0xffffffff);
	if (rd(PX(p, PX_TFD)) & (TFD_BSY | TFD_DRQ)) {
		wr(PX(p, PX_SCTL), (rd(PX(p, PX_SCTL)) & ~0xfu) | 1);
		usleep(2000);
		wr(PX(p, PX_SCTL), rd(PX(p, PX_SCTL)) & ~0xfu);
	}
	port_start_at(P.cl.pa[0]);
}

/* ---- commands ---- */

struct cmd {
	uint8_t op;
	uint16_t features;
	uint16_t count;
	uint64_t lba;
	bool write; /* header W: host to device */
	bool ncq;   /* FPDMA QUEUED: count in features, tag in count 7:3, issued through PxSACT */
	uint8_t device;
};

/* Fills slot's command FIS and header (in list cl) for PRD entries over [addr[i], +len[i]). */
static void build(struct dmamem *cl, int slot, const struct cmd *c, const uint64_t *addr, const uint32_t *len, int n)
{
	volatile uint8_t *f = cfis(slot);
	memset((void *)f, 0, 0x80);
	f[0] = 0x27; /* register FIS, host to device */
	f[1] = 0x80; /* C: command */
	f[2] = c->op;
	uint16_t feat = c->features, count = c->count;
	if (c->ncq) {
		feat = c->count;
		count = (uint16_t)(slot << 3);
	}
	f[3] = (uint8_t)feat;
	f[4] = (uint8_t)c->lba, f[5] = (uint8_t)(c->lba >> 8), f[6] = (uint8_t)(c->lba >> 16);
	f[7] = c->device ? c->device : 0x40;
	f[8] = (uint8_t)(c->lba >> 24), f[9] = (uint8_t)(c->lba >> 32), f[10] = (uint8_t)(c->lba >> 40);
	f[11] = (uint8_t)(feat >> 8);
	f[12] = (uint8_t)count, f[13] = (uint8_t)(count >> 8);
	volatile struct prd *t = prdt(slot);
	for (int i = 0; i < n; i++) {
		t[i].dba = (uint32_t)addr[i];
		t[i].dbau = (uint32_t)(addr[i] >> 32);
		t[i].rsv = 0;
		t[i].dbc = (len[i] - 1) & 0x3fffff;
	}
	volatile struct hdr *h = header(cl, slot);
	h->dw0 = 5u | (c->write ? 1u << 6 : 0) | (uint32_t)n << 16;
	h->prdbc = 0;
	h->ctba = (uint32_t)P.ct.pa[slot];
	h->ctbau = (uint32_t)(P.ct.pa[slot] >> 32);
	__sync_synchronize();
}

/* PRD entries for `bytes` of m from page `first`, one per page. */
static int prds_of(const struct dmamem *m, size_t first, size_t bytes, uint64_t *addr, uint32_t *len)
{
	int n = 0;
	for (size_t off = 0; off < bytes; off += PAGE, n++) {
		addr[n] = m->pa[first + off / PAGE];
		len[n] = (uint32_t)(bytes - off < PAGE ? bytes - off : PAGE);
	}
	return n;
}

/* PRD entries over physical [a, a + bytes), at most 4 MiB each. */
static int prds_phys(uint64_t a, size_t bytes, uint64_t *addr, uint32_t *len)
{
	int n = 0;
	while (bytes && n < PRDS_PER_TABLE) {
		size_t l = bytes < 0x400000 ? bytes : 0x400000;
		addr[n] = a, len[n] = (uint32_t)l;
		n++, a += l, bytes -= l;
	}
	return n;
}

struct outcome {
	bool timeout;
	uint32_t tfd, is, serr, ci, sact;
};

static void issue(uint32_t mask, bool ncq)
{
	int p = P.no;
	if (ncq)
		wr(PX(p, PX_SACT), mask);
	wr(PX(p, PX_CI), mask);
}

/* Waits for the slots in mask to complete (or an error); recovers the port after one. */
static void wait_done(uint32_t mask, struct outcome *o)
{
	int p = P.no;
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	memset(o, 0, sizeof *o);
	for (;;) {
		uint32_t is = rd(PX(p, PX_IS));
		uint32_t busy = (rd(PX(p, PX_CI)) | rd(PX(p, PX_SACT))) & mask;
		if (!busy || (is & IS_FATAL))
			break;
		if (now_ms() > end) {
			o->timeout = true;
			break;
		}
	}
	o->tfd = rd(PX(p, PX_TFD));
	o->is = rd(PX(p, PX_IS));
	o->serr = rd(PX(p, PX_SERR));
	o->ci = rd(PX(p, PX_CI));
	o->sact = rd(PX(p, PX_SACT));
	wr(PX(p, PX_IS), o->is);
	if (o->timeout || (o->is & IS_FATAL) || (o->tfd & TFD_ERR))
		port_recover();
}

static const char *verdict(const struct outcome *o)
{
	if (o->timeout)
		return "timeout";
	if ((o->tfd & TFD_ERR) || (o->is & IS_FATAL))
		return ((o->tfd >> 8) & ERR_ABRT) && (o->tfd & TFD_ERR) ? "aborted" : "error";
	return "ok";
}

static const char *regs(const struct outcome *o)
{
	static char out[160];
	snprintf(out, sizeof out, "status=0x%02x error=0x%02x is=0x%08x serr=0x%08x ci=0x%08x sact=0x%08x",
	    o->tfd & 0xff, (o->tfd >> 8) & 0xff, o->is, o->serr, o->ci, o->sact);
	return out;
}

/* One command on slot 0 (or `slot`), data in m from page 0 (NULL: none); waits. */
static void run1(int slot, const struct cmd *c, const struct dmamem *m, size_t bytes, struct outcome *o)
{
	uint64_t addr[PRDS_PER_TABLE];
	uint32_t len[PRDS_PER_TABLE];
	int n = m ? prds_of(m, 0, bytes, addr, len) : 0;
	build(&P.cl, slot, c, addr, len, n);
	issue(1u << slot, c->ncq);
	wait_done(1u << slot, o);
}

static struct cmd rw_cmd(bool write, bool ncq, uint64_t lba, unsigned count)
{
	struct cmd c = { 0 };
	c.op = ncq ? (write ? ATA_WRITE_FPDMA : ATA_READ_FPDMA) : (write ? ATA_WRITE_DMA_EXT : ATA_READ_DMA_EXT);
	c.lba = lba;
	c.count = (uint16_t)count;
	c.write = write;
	c.ncq = ncq;
	return c;
}

static void check_count(unsigned count)
{
	if (count == 0 || count > MAX_SECTORS)
		die("COUNT must be 1-%d sectors", MAX_SECTORS);
}

/* Reads or writes count sectors at lba through buffer m; true when it completed. */
static bool xfer(bool write, bool ncq, uint64_t lba, unsigned count, struct dmamem *m, struct outcome *o)
{
	struct cmd c = rw_cmd(write, ncq, lba, count);
	run1(0, &c, m, (size_t)count * SECTOR, o);
	return !strcmp(verdict(o), "ok");
}

static void fill_bytes(struct dmamem *m, size_t bytes, uint8_t v)
{
	memset(m->va, v, bytes);
}

/* Does the disk hold byte v in every one of these sectors? */
static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static struct dmamem buffer(size_t bytes)
{
	struct dmamem m;
	dma_alloc(&m, (bytes + PAGE - 1) / PAGE, (cap & CAP_S64A) ? 0 : 0x100000000ull);
	return m;
}

/* ---- options ---- */

struct opts {
	bool ncq, write, read, before, keep;
	const char *pattern, *out, *via, *target;
	int slots;
	uint64_t lba;
	bool lba_set;
	bool data_out, data_in;
};

static void fill_pattern(uint8_t *buf, unsigned count, uint64_t lba, const char *pattern)
{
	size_t bytes = (size_t)count * SECTOR;
	if (!pattern)
		die("write needs --pattern HEX|lba");
	if (!strcmp(pattern, "lba")) {
		for (unsigned s = 0; s < count; s++)
			for (unsigned i = 0; i < SECTOR; i += 8) {
				uint64_t v = lba + s;
				memcpy(buf + (size_t)s * SECTOR + i, &v, 8);
			}
		return;
	}
	uint8_t pat[SECTOR];
	size_t n = parse_hex(pattern, pat, sizeof pat);
	if (!n)
		die("--pattern wants an even number of hex digits (at most %d bytes) or 'lba'", SECTOR);
	for (size_t i = 0; i < bytes; i++)
		buf[i] = pat[i % n];
}

/* ---- commands ---- */

static void cmd_info(void)
{
	uint32_t pi = rd(HBA_PI);
	char ports[512] = "";
	for (int p = 0; p < 32; p++) {
		if (!(pi & (1u << p)))
			continue;
		size_t u = strlen(ports);
		snprintf(ports + u, sizeof ports - u, " p%d=det%u,sig0x%08x", p, rd(PX(p, PX_SSTS)) & 0xf,
		    rd(PX(p, PX_SIG)));
	}
	result("result=ok op=info bdf=%s abar=0x%" PRIx64 " bar4=0x%08x cap=0x%08x ghc=0x%08x pi=0x%08x vs=0x%08x "
	       "ncq=%d slots=%u ecam=0x%" PRIx64 "%s",
	    fn.bdf, abar_phys, pci_cfg_read(&fn, 0x20, 4), cap, rd(HBA_GHC), pi, rd(HBA_VS), !!(cap & CAP_SNCQ),
	    ((cap >> 8) & 0x1f) + 1, pci_ecam_addr(&fn), ports);
}

static void ata_string(const uint16_t *id, int from, int words, char *out)
{
	int n = 0;
	for (int i = 0; i < words; i++) {
		out[n++] = (char)(id[from + i] >> 8);
		out[n++] = (char)id[from + i];
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = 0;
	for (int i = 0; i < n; i++)
		if (out[i] == ' ' || out[i] < 0x21 || out[i] > 0x7e)
			out[i] = '_';
}

static void cmd_identify(void)
{
	struct dmamem m = buffer(SECTOR);
	struct cmd c = { .op = ATA_IDENTIFY, .device = 0xa0 };
	struct outcome o;
	run1(0, &c, &m, SECTOR, &o);
	const uint16_t *id = (const uint16_t *)m.va;
	char model[48], serial[24];
	ata_string(id, 27, 20, model);
	ata_string(id, 10, 10, serial);
	uint64_t sectors = (uint64_t)id[100] | (uint64_t)id[101] << 16 | (uint64_t)id[102] << 32 |
			   (uint64_t)id[103] << 48;
	result("result=%s op=identify port=%d model=%s serial=%s sectors=%" PRIu64 " ncq=%d qdepth=%u %s", verdict(&o),
	    P.no, model, serial, sectors, !!(id[76] & 0x100), (id[75] & 0x1f) + 1u, regs(&o));
}

static void cmd_rw(bool write, uint64_t lba, unsigned count, const struct opts *op)
{
	check_count(count);
	size_t bytes = (size_t)count * SECTOR;
	struct dmamem m = buffer(bytes);
	struct outcome o;
	if (write)
		fill_pattern(m.va, count, lba, op->pattern);
	uint64_t t0 = now_us();
	xfer(write, op->ncq, lba, count, &m, &o);
	uint64_t us = now_us() - t0;
	char sha[65];
	sha256_hex(m.va, bytes, sha);
	if (!write && op->out)
		write_file(op->out, m.va, bytes);
	result("result=%s op=%s port=%d lba=%" PRIu64 " count=%u ncq=%d us=%" PRIu64 " sha256=%s first=%s %s",
	    verdict(&o), write ? "write" : "read", P.no, lba, count, op->ncq, us, sha, first_hex(m.va, bytes),
	    regs(&o));
}

/* Slots 0..n-1 at once, each `count` sectors at lba + i * count: write (pattern lba), then read and compare. */
static void cmd_multi(uint64_t lba, unsigned count, const struct opts *op)
{
	int n = op->slots ? op->slots : 32;
	int maxslots = (int)((cap >> 8) & 0x1f) + 1;
	if (n < 1 || n > maxslots)
		die("--slots must be 1-%d", maxslots);
	check_count(count);
	size_t bytes = (size_t)count * SECTOR;
	struct dmamem w[SLOTS], r[SLOTS];
	uint32_t mask = n == 32 ? 0xffffffffu : (1u << n) - 1;
	uint64_t addr[PRDS_PER_TABLE];
	uint32_t len[PRDS_PER_TABLE];
	for (int i = 0; i < n; i++) {
		w[i] = buffer(bytes);
		r[i] = buffer(bytes);
		fill_pattern(w[i].va, count, lba + (uint64_t)i * count, "lba");
		fill_bytes(&r[i], bytes, FILL_MEM);
	}
	struct outcome ow, orr;
	for (int i = 0; i < n; i++) {
		struct cmd c = rw_cmd(true, op->ncq, lba + (uint64_t)i * count, count);
		build(&P.cl, i, &c, addr, len, prds_of(&w[i], 0, bytes, addr, len));
	}
	uint64_t t0 = now_us();
	issue(mask, op->ncq);
	wait_done(mask, &ow);
	for (int i = 0; i < n; i++) {
		struct cmd c = rw_cmd(false, op->ncq, lba + (uint64_t)i * count, count);
		build(&P.cl, i, &c, addr, len, prds_of(&r[i], 0, bytes, addr, len));
	}
	issue(mask, op->ncq);
	wait_done(mask, &orr);
	uint64_t us = now_us() - t0;
	int bad = 0;
	for (int i = 0; i < n; i++)
		bad += memcmp(w[i].va, r[i].va, bytes) != 0;
	const char *v = strcmp(verdict(&ow), "ok") ? verdict(&ow) : verdict(&orr);
	result("result=%s op=multi port=%d lba=%" PRIu64 " count=%u slots=%d ncq=%d mismatches=%d us=%" PRIu64
	       " write_%s read_%s",
	    v, P.no, lba, count, n, op->ncq, bad, us, regs(&ow), regs(&orr));
}

/* What a range of the disk holds, compared with the candidates. */
static const char *landed_as(const uint8_t *disk, size_t bytes, const uint8_t *mem, bool mem_ok)
{
	if (all_bytes(disk, bytes, FILL_DISK))
		return "unchanged";
	if (mem_ok && mem && !memcmp(disk, mem, bytes))
		return "memory";
	if (all_bytes(disk, bytes, 0))
		return "zeros";
	return "other";
}

/* The disk's sectors filled with FILL_DISK (through the normal path); dies when that fails. */
static void prefill(uint64_t lba, unsigned count)
{
	size_t bytes = (size_t)count * SECTOR;
	struct dmamem m = buffer(bytes);
	struct outcome o;
	fill_bytes(&m, bytes, FILL_DISK);
	if (!xfer(true, false, lba, count, &m, &o))
		die("prefilling LBA %" PRIu64 " failed: %s %s", lba, verdict(&o), regs(&o));
	munmap(m.va, m.pages * PAGE);
}

static bool readback(uint64_t lba, unsigned count, uint8_t *out)
{
	size_t bytes = (size_t)count * SECTOR;
	struct dmamem m = buffer(bytes);
	struct outcome o;
	bool ok = xfer(false, false, lba, count, &m, &o);
	memcpy(out, m.va, bytes);
	munmap(m.va, m.pages * PAGE);
	return ok;
}

/* A physical target: "self" (a buffer of ours holding PATTERN_A) or an address. */
struct target {
	bool self;
	uint64_t addr;
	struct dmamem own;
};

static struct target target_of(const char *where, size_t bytes)
{
	struct target t = { 0 };
	t.self = !where || !strcmp(where, "self");
	if (t.self) {
		t.own = buffer(bytes);
		fill_bytes(&t.own, bytes, PATTERN_A);
		t.addr = t.own.pa[0];
	} else {
		t.addr = num(where, "PHYSADDR");
	}
	return t;
}

static int target_prds(struct target *t, size_t bytes, uint64_t *addr, uint32_t *len)
{
	return t->self ? prds_of(&t->own, 0, bytes, addr, len) : prds_phys(t->addr, bytes, addr, len);
}

static bool target_read(struct target *t, size_t bytes, uint8_t *out)
{
	if (t->self) {
		memcpy(out, t->own.va, bytes);
		return true;
	}
	return devmem_read(t->addr, bytes, out);
}

static void cmd_prd_at(const char *where, uint64_t lba, unsigned count, const struct opts *op)
{
	check_count(count);
	size_t bytes = (size_t)count * SECTOR;
	struct target t = target_of(where, bytes);
	uint8_t *disk = xmalloc(bytes), *mem = xmalloc(bytes), *after = xmalloc(bytes);
	uint64_t addr[PRDS_PER_TABLE];
	uint32_t len[PRDS_PER_TABLE];
	struct outcome o;
	char dsha[65], msha[65] = "-", asha[65] = "-";
	if (!op->write) {
		/* Device -> memory at the target: does the disk's data appear there? */
		struct dmamem src = buffer(bytes);
		fill_pattern(src.va, count, lba, "lba");
		if (!xfer(true, false, lba, count, &src, &o))
			die("writing LBA %" PRIu64 " before the attack failed: %s", lba, regs(&o));
		memcpy(disk, src.va, bytes);
		if (t.self)
			fill_bytes(&t.own, bytes, FILL_MEM);
		bool mem_ok = target_read(&t, bytes, mem);
		struct cmd c = rw_cmd(false, op->ncq, lba, count);
		build(&P.cl, 0, &c, addr, len, target_prds(&t, bytes, addr, len));
		issue(1, op->ncq);
		wait_done(1, &o);
		bool after_ok = target_read(&t, bytes, after);
		const char *state;
		if (!mem_ok || !after_ok)
			state = "unreadable";
		else if (!memcmp(after, disk, bytes))
			state = "disk-data";
		else
			state = !memcmp(after, mem, bytes) ? "unchanged" : "other";
		if (mem_ok)
			sha256_hex(mem, bytes, msha);
		if (after_ok)
			sha256_hex(after, bytes, asha);
		sha256_hex(disk, bytes, dsha);
		result("result=%s op=prd-at dir=read addr=0x%" PRIx64 " port=%d lba=%" PRIu64
		       " count=%u ncq=%d mem=%s disk_sha256=%s mem_before_sha256=%s mem_after_sha256=%s %s",
		    verdict(&o), t.addr, P.no, lba, count, op->ncq, state, dsha, msha, asha, regs(&o));
	} else {
		/* Memory at the target -> device: what lands in the sectors? */
		bool mem_ok = target_read(&t, bytes, mem);
		prefill(lba, count);
		struct cmd c = rw_cmd(true, op->ncq, lba, count);
		build(&P.cl, 0, &c, addr, len, target_prds(&t, bytes, addr, len));
		issue(1, op->ncq);
		wait_done(1, &o);
		struct outcome o2 = o;
		if (!readback(lba, count, disk))
			die("reading LBA %" PRIu64 " back failed", lba);
		sha256_hex(disk, bytes, dsha);
		if (mem_ok)
			sha256_hex(mem, bytes, msha);
		result("result=%s op=prd-at dir=write addr=0x%" PRIx64 " port=%d lba=%" PRIu64
		       " count=%u ncq=%d landed=%s disk_sha256=%s mem_sha256=%s mem=%s %s",
		    verdict(&o2), t.addr, P.no, lba, count, op->ncq, landed_as(disk, bytes, mem, mem_ok), dsha, msha,
		    mem_ok ? "readable" : "unreadable", regs(&o2));
	}
}

/* ---- race: the command table rewritten from another CPU right after issue ---- */

#define ALT_OFFSET 256 /* sectors between the command's LBA and the racer's */

struct racer {
	int slot;
	uint64_t alt_lba;
	uint64_t alt_addr[PRDS_PER_TABLE];
	int n;
	int ready, go, stop; /* __atomic */
	unsigned long loops;
};

static void race_once(struct racer *r)
{
	volatile uint8_t *f = cfis(r->slot);
	volatile struct prd *t = prdt(r->slot);
	f[4] = (uint8_t)r->alt_lba, f[5] = (uint8_t)(r->alt_lba >> 8), f[6] = (uint8_t)(r->alt_lba >> 16);
	f[8] = (uint8_t)(r->alt_lba >> 24);
	for (int i = 0; i < r->n; i++) {
		t[i].dba = (uint32_t)r->alt_addr[i];
		t[i].dbau = (uint32_t)(r->alt_addr[i] >> 32);
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	r->loops++;
}

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	pin(ncpus() > 1 ? 1 : 0);
	__atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
			return NULL;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
		race_once(r);
	return NULL;
}

/* Which buffer's bytes a range holds: A (the command's), B (the racer's), fill, other. */
static const char *which(const uint8_t *p, size_t n, uint8_t fill)
{
	return all_bytes(p, n, PATTERN_A)   ? "A"
	       : all_bytes(p, n, PATTERN_B) ? "B"
	       : all_bytes(p, n, fill)      ? "fill"
					    : "other";
}

static void cmd_race(uint64_t lba, unsigned count, const struct opts *op)
{
	check_count(count);
	size_t bytes = (size_t)count * SECTOR;
	bool write = !op->read;
	struct dmamem a = buffer(bytes), b = buffer(bytes);
	struct racer r = { 0 };
	uint64_t addr[PRDS_PER_TABLE];
	uint32_t len[PRDS_PER_TABLE];
	struct outcome o;
	uint64_t alt = lba + ALT_OFFSET;
	if (write) {
		prefill(lba, count);
		prefill(alt, count);
		fill_bytes(&a, bytes, PATTERN_A);
		fill_bytes(&b, bytes, PATTERN_B);
	} else {
		fill_bytes(&a, bytes, PATTERN_A);
		if (!xfer(true, false, lba, count, &a, &o))
			die("setup write failed: %s", regs(&o));
		fill_bytes(&b, bytes, PATTERN_B);
		if (!xfer(true, false, alt, count, &b, &o))
			die("setup write failed: %s", regs(&o));
		fill_bytes(&a, bytes, FILL_MEM);
		fill_bytes(&b, bytes, FILL_MEM);
	}
	r.slot = 0;
	r.alt_lba = alt;
	r.n = prds_of(&b, 0, bytes, r.alt_addr, len);
	struct cmd c = rw_cmd(write, op->ncq, lba, count);
	build(&P.cl, 0, &c, addr, len, prds_of(&a, 0, bytes, addr, len));
	pthread_t th;
	bool threaded = ncpus() > 1 && !op->before;
	if (op->before) {
		race_once(&r); /* the control: the rewrite lands before the issue */
	} else if (threaded) {
		pthread_create(&th, NULL, racer_main, &r);
		while (!__atomic_load_n(&r.ready, __ATOMIC_ACQUIRE))
			;
		pin(0);
		__atomic_store_n(&r.go, 1, __ATOMIC_RELEASE);
	}
	issue(1, op->ncq);
	if (!threaded && !op->before)
		race_once(&r);
	wait_done(1, &o);
	if (threaded) {
		__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
		pthread_join(th, NULL);
	}
	uint8_t *d1 = xmalloc(bytes), *d2 = xmalloc(bytes);
	char out[160];
	if (write) {
		readback(lba, count, d1);
		readback(alt, count, d2);
		snprintf(out, sizeof out, "at_lba=%s at_alt=%s", which(d1, bytes, FILL_DISK),
		    which(d2, bytes, FILL_DISK));
	} else {
		snprintf(out, sizeof out, "buf_a=%s buf_b=%s", which(a.va, bytes, FILL_MEM),
		    which(b.va, bytes, FILL_MEM));
	}
	result("result=%s op=race dir=%s port=%d lba=%" PRIu64 " alt_lba=%" PRIu64
	       " count=%u ncq=%d racer=%s loops=%lu %s %s",
	    verdict(&o), write ? "write" : "read", P.no, lba, alt, count, op->ncq,
	    op->before ? "before-issue"
	    : threaded ? "cpu1"
		       : "same-cpu",
	    r.loops, out, regs(&o));
}

/* ---- a command list the tool sets up behind the port's back: WRITE DMA EXT from a target ---- */

/* Slot 0 of the alternate list: WRITE DMA EXT of count sectors at lba from the target. */
static void build_evil(uint64_t lba, unsigned count, struct target *t)
{
	uint64_t addr[PRDS_PER_TABLE];
	uint32_t len[PRDS_PER_TABLE];
	struct cmd c = rw_cmd(true, false, lba, count);
	memset(P.alt.va, 0, PAGE);
	build(&P.alt, 0, &c, addr, len, target_prds(t, (size_t)count * SECTOR, addr, len));
}

static void cmd_clb_move(uint64_t lba, unsigned count, const struct opts *op)
{
	check_count(count);
	size_t bytes = (size_t)count * SECTOR;
	struct target t = target_of(op->target, bytes);
	uint8_t *mem = xmalloc(bytes), *disk = xmalloc(bytes);
	bool mem_ok = target_read(&t, bytes, mem);
	int p = P.no;
	prefill(lba, count);
	/* Slots 1..4 of our list: NCQ reads elsewhere, outstanding while PxCLB moves. */
	struct dmamem rb = buffer(4 * (size_t)PAGE);
	uint64_t addr[PRDS_PER_TABLE];
	uint32_t len[PRDS_PER_TABLE];
	for (int s = 1; s <= 4; s++) {
		struct cmd c = rw_cmd(false, true, lba + 1024 + (uint64_t)s * 8, 8);
		build(&P.cl, s, &c, addr, len, prds_of(&rb, (size_t)s - 1, PAGE, addr, len));
	}
	/* Slot 0 of our list is harmless (IDENTIFY into rb's first page). */
	struct cmd id = { .op = ATA_IDENTIFY, .device = 0xa0 };
	build(&P.cl, 0, &id, addr, len, prds_of(&rb, 0, SECTOR, addr, len));
	build_evil(lba, count, &t);
	issue(0x1e, true);
	set_clb(P.alt.pa[0], P.cl.pa[0] + 0x400);
	uint32_t clb_rb = rd(PX(p, PX_CLB));
	struct outcome o1, o2;
	issue(1, false);
	wait_done(0x1f, &o1);
	if (!readback(lba, count, disk))
		die("readback failed");
	const char *running = landed_as(disk, bytes, mem, mem_ok);
	/* The same with a stop and start in between: the port now runs on the alternate list. */
	prefill(lba, count);
	build_evil(lba, count, &t);
	int started = port_start_at(P.alt.pa[0]);
	issue(1, false);
	wait_done(1, &o2);
	port_start_at(P.cl.pa[0]);
	if (!readback(lba, count, disk))
		die("readback failed");
	const char *restarted = landed_as(disk, bytes, mem, mem_ok);
	struct dmamem chk = buffer(SECTOR);
	struct outcome o3;
	bool works = xfer(false, false, lba, 1, &chk, &o3);
	result("result=ok op=clb-move port=%d lba=%" PRIu64 " count=%u target=0x%" PRIx64
	       " clb_readback=0x%08x running=%s running_result=%s restart=%d restarted=%s restarted_result=%s "
	       "after=%s",
	    p, lba, count, t.addr, clb_rb, running, verdict(&o1), started, restarted, verdict(&o2),
	    works ? "ok" : verdict(&o3));
}

/* The index/data pair (BAR4): stop the port, point PxCLB at the alternate list, start, issue. */
static void cmd_idp(uint64_t lba, unsigned count, const struct opts *op)
{
	check_count(count);
	if (!idp_port)
		die("%s has no I/O BAR4 (index/data pair)", fn.bdf);
	size_t bytes = (size_t)count * SECTOR;
	struct target t = target_of(op->target, bytes);
	uint8_t *mem = xmalloc(bytes), *disk = xmalloc(bytes);
	bool mem_ok = target_read(&t, bytes, mem);
	int p = P.no;
	/* The pair reaches the registers: CAP read through it equals CAP through the ABAR. */
	outl(HBA_CAP, idp_port + idp_off);
	uint32_t cap_idp = inl(idp_port + idp_off + 4);
	prefill(lba, count);
	build_evil(lba, count, &t);
	via_idp = true;
	int started = port_start_at(P.alt.pa[0]);
	uint32_t clb_idp = rd(PX(p, PX_CLB));
	struct outcome o;
	issue(1, false);
	wait_done(1, &o);
	via_idp = false;
	uint32_t clb_mmio = rd(PX(p, PX_CLB));
	port_start_at(P.cl.pa[0]);
	if (!readback(lba, count, disk))
		die("readback failed");
	struct dmamem chk = buffer(SECTOR);
	struct outcome o3;
	bool works = xfer(false, false, lba, 1, &chk, &o3);
	result("result=%s op=idp port=%d bar4=0x%x index=0x%x lba=%" PRIu64 " count=%u target=0x%" PRIx64
	       " cap_match=%s started=%d clb_idp=0x%08x clb_mmio=0x%08x landed=%s after=%s %s",
	    verdict(&o), p, idp_port, idp_port + idp_off, lba, count, t.addr, cap_idp == cap ? "yes" : "no", started,
	    clb_idp, clb_mmio, landed_as(disk, bytes, mem, mem_ok), works ? "ok" : verdict(&o3), regs(&o));
}

/* A command by opcode: no data, or --data-out / --data-in of COUNT sectors (DMA). */
static void cmd_cmd(uint8_t opcode, uint16_t features, uint16_t count, uint64_t lba, const struct opts *op)
{
	size_t bytes = (op->data_out || op->data_in) ? (size_t)(count ? count : 1) * SECTOR : 0;
	struct dmamem m = buffer(bytes ? bytes : SECTOR);
	if (op->data_out) {
		if (op->pattern)
			fill_pattern(m.va, (unsigned)(bytes / SECTOR), lba, op->pattern);
		else if (opcode == ATA_DSM) {
			/* One TRIM range entry: LBA (48 bits) and a length of count sectors (16 bits). */
			uint64_t e = (lba & 0xffffffffffffull) | (uint64_t)(count ? count : 1) << 48;
			memcpy(m.va, &e, 8);
		}
	}
	struct cmd c = { .op = opcode, .features = features, .count = count, .lba = lba, .write = op->data_out };
	struct outcome o;
	run1(0, &c, bytes ? &m : NULL, bytes, &o);
	struct dmamem chk = buffer(SECTOR);
	struct outcome o2;
	struct cmd idc = { .op = ATA_IDENTIFY, .device = 0xa0 };
	run1(0, &idc, &chk, SECTOR, &o2);
	result("result=%s op=cmd port=%d opcode=0x%02x features=0x%04x count=%u lba=%" PRIu64 " data=%s after=%s %s",
	    verdict(&o), P.no, opcode, features, count, lba,
	    op->data_out  ? "out"
	    : op->data_in ? "in"
			  : "none",
	    verdict(&o2), regs(&o));
}

/* GHC.HR during a large write; then the HBA is set up again and a round trip must work. */
static void cmd_hba_reset(uint64_t lba, unsigned count, const struct opts *op)
{
	check_count(count);
	size_t bytes = (size_t)count * SECTOR;
	struct dmamem m = buffer(bytes);
	fill_bytes(&m, bytes, PATTERN_B);
	uint64_t addr[PRDS_PER_TABLE];
	uint32_t len[PRDS_PER_TABLE];
	struct cmd c = rw_cmd(true, op->ncq, lba, count);
	build(&P.cl, 0, &c, addr, len, prds_of(&m, 0, bytes, addr, len));
	issue(1, op->ncq);
	uint32_t ci_before = rd(PX(P.no, PX_CI));
	wr(HBA_GHC, rd(HBA_GHC) | GHC_HR);
	int cleared = wait_clear(HBA_GHC, GHC_HR) == 0;
	wr(HBA_GHC, GHC_AE);
	uint32_t ci_after = rd(PX(P.no, PX_CI)), clb_after = rd(PX(P.no, PX_CLB));
	int started = port_start_at(P.cl.pa[0]);
	/* A round trip on other sectors. */
	struct dmamem w = buffer(8 * SECTOR), r = buffer(8 * SECTOR);
	fill_pattern(w.va, 8, lba + count, "lba");
	struct outcome o1, o2;
	bool ok = xfer(true, op->ncq, lba + count, 8, &w, &o1) && xfer(false, op->ncq, lba + count, 8, &r, &o2);
	bool match = ok && !memcmp(w.va, r.va, 8 * SECTOR);
	result("result=%s op=hba-reset port=%d lba=%" PRIu64 " count=%u ncq=%d ci_before=0x%08x hr_cleared=%d "
	       "ci_after=0x%08x clb_after=0x%08x restarted=%d roundtrip=%s",
	    ok && match ? "ok" : "error", P.no, lba, count, op->ncq, ci_before, cleared, ci_after, clb_after,
	    started == 0,
	    match ? "ok"
	    : ok  ? "mismatch"
		  : verdict(&o1));
}

/* BAR5 (ABAR) moved by a configuration write; then, at the new address: a round trip, and
 * a command Parapet refuses (DATA SET MANAGEMENT) or the device executes. */
static void cmd_abar_move(uint64_t newbase, const struct opts *op)
{
	const char *via = op->via ? op->via : "cf8";
	uint32_t old = pci_cfg_read(&fn, 0x24, 4);
	uint32_t v = (uint32_t)newbase;
	if (!strcmp(via, "cf8"))
		cf8_write32(&fn, 0x24, v);
	else if (!strcmp(via, "sysfs"))
		pci_cfg_write(&fn, 0x24, 4, v);
	else if (!strcmp(via, "ecam")) {
		uint64_t e = pci_ecam_addr(&fn);
		if (!e)
			die("no ECAM (no MCFG table)");
		volatile uint32_t *page = devmem_map(e, PAGE);
		if (page) {
			page[0x24 / 4] = v;
			__sync_synchronize();
		} else {
			/* The kernel keeps ECAM from /dev/mem: a ring-0 store by the guest module
			 * (loaded under Parapet, or bare with bare=1). */
			char line[64];
			snprintf(line, sizeof line, "%" PRIx64 " %x", e + 0x24, v);
			if (write_text("/proc/parapet/mmio", line) < 0)
				die("cannot store to the ECAM page at 0x%" PRIx64
				    " (/dev/mem refused, no /proc/parapet/mmio)",
				    e);
		}
	} else
		die("--via is cf8, sysfs or ecam");
	uint32_t now = pci_cfg_read(&fn, 0x24, 4);
	volatile uint32_t *old_map = abar;
	map_abar(newbase & ~0xfull);
	uint32_t cap_new = rd(HBA_CAP), cap_old = old_map[HBA_CAP / 4];
	/* The port again, at the new address. */
	port_start_at(P.cl.pa[0]);
	struct dmamem w = buffer(8 * SECTOR), r = buffer(8 * SECTOR);
	uint64_t lba = op->lba_set ? op->lba : 0;
	fill_pattern(w.va, 8, lba, "lba");
	struct outcome o1, o2, o3;
	bool ok = xfer(true, false, lba, 8, &w, &o1) && xfer(false, false, lba, 8, &r, &o2);
	bool match = ok && !memcmp(w.va, r.va, 8 * SECTOR);
	struct dmamem d = buffer(SECTOR);
	uint64_t e = (lba & 0xffffffffffffull) | 8ull << 48;
	memcpy(d.va, &e, 8);
	struct cmd dsm = { .op = ATA_DSM, .features = 1, .count = 1, .lba = 0, .write = true };
	run1(0, &dsm, &d, SECTOR, &o3);
	bool restored = false;
	if (!op->keep) {
		pci_cfg_write(&fn, 0x24, 4, old);
		restored = pci_cfg_read(&fn, 0x24, 4) == old;
		map_abar(old & ~0xfu);
		port_start_at(P.cl.pa[0]);
	}
	result("result=ok op=abar-move via=%s old=0x%08x new=0x%08x readback=0x%08x cap_new=0x%08x cap_old=0x%08x "
	       "roundtrip=%s dsm=%s dsm_%s restored=%d",
	    via, old, v, now, cap_new, cap_old,
	    match ? "ok"
	    : ok  ? "mismatch"
		  : verdict(&o1),
	    verdict(&o3), regs(&o3), restored);
}

/* ---- main ---- */

static void usage(void)
{
	fputs("usage: ahciatk [--dev BDF] [--unbind] [--timeout MS] COMMAND ...\n"
	      "  info | unbind | bind [DRIVER]\n"
	      "  identify PORT\n"
	      "  read  PORT LBA COUNT [--ncq] [--out FILE]\n"
	      "  write PORT LBA COUNT [--ncq] --pattern HEX|lba\n"
	      "  multi PORT LBA COUNT [--slots N] [--ncq]      N slots at once: write, read, compare\n"
	      "  prd-at PHYSADDR|self PORT LBA COUNT [--write] [--ncq]\n"
	      "  race PORT LBA COUNT [--read] [--ncq] [--before]\n"
	      "  clb-move PORT LBA COUNT [--target PHYSADDR|self]\n"
	      "  idp PORT LBA COUNT [--target PHYSADDR|self] [--idp-offset OFF]\n"
	      "  cmd PORT OPCODE [FEATURES] [COUNT] [LBA] [--data-out [--pattern HEX]|--data-in]\n"
	      "  hba-reset PORT LBA COUNT [--ncq]\n"
	      "  abar-move PORT NEWBASE [--via cf8|sysfs|ecam] [--lba LBA] [--keep]\n"
	      "See docs/guest.md.\n",
	    stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts op = { 0 };
	const char *pos[8];
	int npos = 0;
	bool unbind = false;
	atk_name = "ahciatk";
	atk_usage = usage;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (atk_common_option(argc, argv, &i, &opt_dev, &unbind))
			continue;
		if (!strcmp(a, "--ncq"))
			op.ncq = true;
		else if (!strcmp(a, "--write"))
			op.write = true;
		else if (!strcmp(a, "--read"))
			op.read = true;
		else if (!strcmp(a, "--before"))
			op.before = true;
		else if (!strcmp(a, "--keep"))
			op.keep = true;
		else if (!strcmp(a, "--data-out"))
			op.data_out = true;
		else if (!strcmp(a, "--data-in"))
			op.data_in = true;
		else if (!strcmp(a, "--pattern")) {
			op.pattern = atk_value(argc, argv, &i);
		} else if (!strcmp(a, "--out")) {
			op.out = atk_value(argc, argv, &i);
		} else if (!strcmp(a, "--via")) {
			op.via = atk_value(argc, argv, &i);
		} else if (!strcmp(a, "--target")) {
			op.target = atk_value(argc, argv, &i);
		} else if (!strcmp(a, "--slots")) {
			op.slots = (int)num(atk_value(argc, argv, &i), "slots");
		} else if (!strcmp(a, "--idp-offset")) {
			idp_off = (unsigned)num(atk_value(argc, argv, &i), "index/data offset");
		} else if (!strcmp(a, "--lba")) {
			op.lba = num(atk_value(argc, argv, &i), "LBA");
			op.lba_set = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			usage();
		else if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "ahciatk: unknown option %s\n", a);
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
	if (!strcmp(cmd, "unbind") || !strcmp(cmd, "bind")) {
		if (!pci_find(&fn, opt_dev, 0x010601, 0xffffff))
			die("no AHCI controller (PCI class 01:06:01)");
		const char *was = fn.driver[0] ? strdup(fn.driver) : "none";
		if (cmd[0] == 'u') {
			pci_unbind(&fn);
			result("result=ok op=unbind bdf=%s driver=%s", fn.bdf, was);
		} else {
			const char *drv = npos > 1 ? pos[1] : "ahci";
			int r = fn.driver[0] ? 0 : pci_bind(&fn, drv);
			result("result=%s op=bind bdf=%s driver=%s%s%s", r == 0 ? "ok" : "error", fn.bdf, drv,
			    r ? " errno=" : "", r ? strerror(errno) : "");
		}
		return 0;
	}
	prepare(unbind);
	if (!strcmp(cmd, "info")) {
		cmd_info();
		return 0;
	}
	if (!strcmp(cmd, "prd-at")) {
		ARGS(4);
		port_init((int)num(pos[2], "PORT"));
		cmd_prd_at(pos[1], num(pos[3], "LBA"), (unsigned)num(pos[4], "COUNT"), &op);
		return 0;
	}
	ARGS(1);
	port_init((int)num(pos[1], "PORT"));
	if (!strcmp(cmd, "identify"))
		cmd_identify();
	else if (!strcmp(cmd, "abar-move")) {
		ARGS(2);
		cmd_abar_move(num(pos[2], "NEWBASE"), &op);
	} else if (!strcmp(cmd, "cmd")) {
		ARGS(2);
		uint64_t opc = num(pos[2], "OPCODE"), feat = npos > 3 ? num(pos[3], "FEATURES") : 0;
		uint64_t count = npos > 4 ? num(pos[4], "COUNT") : 0, lba = npos > 5 ? num(pos[5], "LBA") : 0;
		if (opc > 0xff || feat > 0xffff || count > 0xffff)
			die("OPCODE is a byte, FEATURES and COUNT 16-bit");
		cmd_cmd((uint8_t)opc, (uint16_t)feat, (uint16_t)count, lba, &op);
	} else {
		ARGS(3);
		uint64_t lba = num(pos[2], "LBA");
		unsigned count = (unsigned)num(pos[3], "COUNT");
		if (!strcmp(cmd, "read") || !strcmp(cmd, "write"))
			cmd_rw(cmd[0] == 'w', lba, count, &op);
		else if (!strcmp(cmd, "multi"))
			cmd_multi(lba, count, &op);
		else if (!strcmp(cmd, "race"))
			cmd_race(lba, count, &op);
		else if (!strcmp(cmd, "clb-move"))
			cmd_clb_move(lba, count, &op);
		else if (!strcmp(cmd, "idp"))
			cmd_idp(lba, count, &op);
		else if (!strcmp(cmd, "hba-reset"))
			cmd_hba_reset(lba, count, &op);
		else {
			fprintf(stderr, "ahciatk: unknown command %s\n", cmd);
			usage();
		}
	}
	return 0;
}
