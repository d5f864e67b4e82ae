/* The attack tools' shared code: see atk.h. */
#define _GNU_SOURCE
#include "atk.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE_BYTES 4096

const char *atk_name = "atk";
void (*atk_usage)(void);

/* ---- output and errors ---- */

void result(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stdout, "%s: ", atk_name);
	vfprintf(stdout, fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	va_end(ap);
}

/* A line on stderr, once what is on stdout has gone out. */
static void vnote(const char *kind, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void vnote(const char *kind, const char *fmt, va_list ap)
{
	fflush(stdout);
	fprintf(stderr, "%s: %s", atk_name, kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vnote("error: ", fmt, ap);
	va_end(ap);
	exit(1);
}

void warnx_(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vnote("warning: ", fmt, ap);
	va_end(ap);
}

/* ---- SHA-256 (FIPS 180-4) ---- */

struct sha256 {
	uint32_t h[8];
	uint8_t buf[64];
	uint64_t len;
	size_t used;
};

static const uint32_t sha_k[64] = {
	0x428a2f98,
	0x71374491,
	0xb5c0fbcf,
	0xe9b5dba5,
	0x3956c25b,
	0x59f111f1,
	0x923f82a4,
	0xab1c5ed5,
	0xd807aa98,
	0x12835b01,
	0x243185be,
	0x550c7dc3,
	0x72be5d74,
	0x80deb1fe,
	0x9bdc06a7,
	0xc19bf174,
	0xe49b69c1,
	0xefbe4786,
	0x0fc19dc6,
	0x240ca1cc,
	0x2de92c6f,
	0x4a7484aa,
	0x5cb0a9dc,
	0x76f988da,
	0x983e5152,
	0xa831c66d,
	0xb00327c8,
	0xbf597fc7,
	0xc6e00bf3,
	0xd5a79147,
	0x06ca6351,
	0x14292967,
	0x27b70a85,
	0x2e1b2138,
	0x4d2c6dfc,
	0x53380d13,
	0x650a7354,
	0x766a0abb,
	0x81c2c92e,
	0x92722c85,
	0xa2bfe8a1,
	0xa81a664b,
	0xc24b8b70,
	0xc76c51a3,
	0xd192e819,
	0xd6990624,
	0xf40e3585,
	0x106aa070,
	0x19a4c116,
	0x1e376c08,
	0x2748774c,
	0x34b0bcb5,
	0x391c0cb3,
	0x4ed8aa4a,
	0x5b9cca4f,
	0x682e6ff3,
	0x748f82ee,
	0x78a5636f,
	0x84c87814,
	0x8cc70208,
	0x90befffa,
	0xa4506ceb,
	0xbef9a3f7,
	0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(struct sha256 *s, const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h;
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
		       p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
		uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha_init(struct sha256 *s)
{
	static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
		0x1f83d9ab, 0x5be0cd19 };
	memcpy(s->h, iv, sizeof iv);
	s->len = 0;
	s->used = 0;
}

static void sha_update(struct sha256 *s, const void *data, size_t n)
{
	const uint8_t *p = data;
	s->len += n;
	while (n) {
		size_t take = 64 - s->used < n ? 64 - s->used : n;
		memcpy(s->buf + s->used, p, take);
		s->used += take, p += take, n -= take;
		if (s->used == 64) {
			sha_block(s, s->buf);
			s->used = 0;
		}
	}
}

/* Writes 64 hex digits and a NUL to out. */
static void sha_hex(struct sha256 *s, char out[65])
{
	uint64_t bits = s->len * 8;
	uint8_t pad = 0x80, zero = 0, lenbe[8];
	sha_update(s, &pad, 1);
	while (s->used != 56)
		sha_update(s, &zero, 1);
	for (int i = 0; i < 8; i++)
		lenbe[i] = (uint8_t)(bits >> (56 - 8 * i));
	sha_update(s, lenbe, 8);
	for (int i = 0; i < 8; i++)
		sprintf(out + 8 * i, "%08x", s->h[i]);
}

void sha256_hex(const void *data, size_t n, char out[65])
{
	struct sha256 s;
	sha_init(&s);
	sha_update(&s, data, n);
	sha_hex(&s, out);
}

/* The first min(n, 16) bytes as hex. */
const char *first_hex(const uint8_t *p, size_t n)
{
	static char out[33];
	size_t k = n < 16 ? n : 16;
	for (size_t i = 0; i < k; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * k] = 0;
	return out;
}

size_t parse_hex(const char *p, uint8_t *out, size_t max)
{
	size_t n = 0;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	if (!*p || strlen(p) % 2 || strlen(p) / 2 > max)
		return 0;
	for (; p[0] && p[1]; p += 2) {
		char b[3] = { p[0], p[1], 0 };
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
			return 0;
		out[n++] = (uint8_t)strtoul(b, NULL, 16);
	}
	return n;
}

/* ---- time ---- */

long timeout_ms = 10000;

uint64_t now_ms(void)
{
	return now_us() / 1000;
}

uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- files ---- */

void copy_str(char *dst, size_t n, const char *src)
{
	size_t len = strnlen(src, n - 1);
	memcpy(dst, src, len);
	dst[len] = 0;
}

int read_text(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, n - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = 0;
	while (r > 0 && isspace((unsigned char)buf[r - 1]))
		buf[--r] = 0;
	return 0;
}

int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t r = write(fd, text, strlen(text));
	int e = errno;
	close(fd);
	errno = e;
	return r == (ssize_t)strlen(text) ? 0 : -1;
}

void write_file(const char *path, const void *buf, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, buf, n) != (ssize_t)n)
		die("%s: %s", path, strerror(errno));
	close(fd);
}

void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

uint64_t num(const char *s, const char *what)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || !*s || *end) {
		fprintf(stderr, "%s: bad %s '%s'\n", atk_name, what, s);
		if (atk_usage)
			atk_usage();
		exit(2);
	}
	return v;
}

/* ---- PCI ---- */

bool pci_find(struct pcifn *f, const char *want, uint32_t cls, uint32_t mask)
{
	const char *root = "/sys/bus/pci/devices";
	char p[512], text[64];
	bool found = false;
	DIR *d = opendir(root);
	if (!d)
		die("cannot open %s: %s", root, strerror(errno));
	struct dirent *e;
	char best[64] = "";
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (want && strcmp(e->d_name, want) != 0 &&
		    !(strlen(want) < strlen(e->d_name) && strcmp(e->d_name + 5, want) == 0))
			continue;
		snprintf(p, sizeof p, "%s/%s/class", root, e->d_name);
		if (read_text(p, text, sizeof text) < 0)
			continue;
		uint32_t c = (uint32_t)strtoul(text, NULL, 16);
		if ((c & mask) != cls)
			continue;
		if (!found || strcmp(e->d_name, best) < 0)
			copy_str(best, sizeof best, e->d_name);
		found = true;
	}
	closedir(d);
	if (!found)
		return false;
	memset(f, 0, sizeof *f);
	copy_str(f->bdf, sizeof f->bdf, best);
	snprintf(f->path, sizeof f->path, "%s/%s", root, best);
	if (sscanf(best, "%x:%x:%x.%x", &f->domain, &f->bus, &f->dev, &f->fn) != 4)
		die("cannot parse the PCI address %s", best);
	snprintf(p, sizeof p, "%s/driver", f->path);
	char link[PATH_MAX];
	ssize_t n = readlink(p, link, sizeof link - 1);
	if (n > 0) {
		link[n] = 0;
		const char *slash = strrchr(link, '/');
		copy_str(f->driver, sizeof f->driver, slash ? slash + 1 : link);
	}
	return true;
}

uint32_t pci_cfg_read(const struct pcifn *f, unsigned off, unsigned size)
{
	char p[256];
	uint32_t v = 0;
	snprintf(p, sizeof p, "%s/config", f->path);
	int fd = open(p, O_RDONLY);
	if (fd < 0 || pread(fd, &v, size, off) != (ssize_t)size)
		die("cannot read %s at 0x%x: %s", p, off, strerror(errno));
	close(fd);
	return v;
}

void pci_cfg_write(const struct pcifn *f, unsigned off, unsigned size, uint32_t v)
{
	char p[256];
	snprintf(p, sizeof p, "%s/config", f->path);
	int fd = open(p, O_WRONLY);
	if (fd < 0 || pwrite(fd, &v, size, off) != (ssize_t)size)
		die("cannot write %s at 0x%x: %s", p, off, strerror(errno));
	close(fd);
}

static uint32_t cf8_addr(const struct pcifn *f, unsigned off)
{
	return 0x80000000u | f->bus << 16 | f->dev << 11 | f->fn << 8 | (off & 0xfc);
}

uint32_t cf8_read32(const struct pcifn *f, unsigned off)
{
	outl(cf8_addr(f, off), 0xcf8);
	return inl(0xcfc);
}

void cf8_write32(const struct pcifn *f, unsigned off, uint32_t v)
{
	outl(cf8_addr(f, off), 0xcf8);
	outl(v, 0xcfc);
}

uint64_t pci_ecam_addr(const struct pcifn *f)
{
	/* MCFG: the 36-byte ACPI header, 8 reserved bytes, then 16-byte entries:
	 * base (8), segment (2), first bus, last bus, 4 reserved. */
	uint8_t t[4096];
	int fd = open("/sys/firmware/acpi/tables/MCFG", O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, t, sizeof t);
	close(fd);
	for (ssize_t at = 44; at + 16 <= n; at += 16) {
		uint64_t base;
		uint16_t seg;
		memcpy(&base, t + at, 8);
		memcpy(&seg, t + at + 8, 2);
		if (seg == f->domain && f->bus >= t[at + 10] && f->bus <= t[at + 11])
			return base + ((uint64_t)(f->bus - t[at + 10]) << 20) + ((uint64_t)f->dev << 15) +
			       ((uint64_t)f->fn << 12);
	}
	return 0;
}

void pci_unbind(struct pcifn *f)
{
	char p[256];
	if (!f->driver[0])
		return;
	snprintf(p, sizeof p, "%s/driver/unbind", f->path);
	if (write_text(p, f->bdf) < 0)
		die("cannot unbind %s from %s: %s", f->bdf, f->driver, strerror(errno));
	fprintf(stderr, "%s: unbound %s from %s\n", atk_name, f->bdf, f->driver);
	f->driver[0] = 0;
}

int pci_bind(struct pcifn *f, const char *driver)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "/sys/bus/pci/drivers/%s/bind", driver);
	int r = write_text(p, f->bdf);
	if (r == 0)
		copy_str(f->driver, sizeof f->driver, driver);
	return r;
}

void need_io(void)
{
	static bool io_ok;
	if (!io_ok) {
		if (iopl(3) < 0)
			die("iopl(3): %s (run as root)", strerror(errno));
		io_ok = true;
	}
}

/* ---- memory ---- */

void dma_alloc(struct dmamem *m, size_t pages, uint64_t limit)
{
	static bool once;
	if (!once) {
		/* Compaction may move locked pages; ask it not to (best effort). */
		write_text("/proc/sys/vm/compact_unevictable_allowed", "0");
		once = true;
	}
	m->pages = pages;
	m->va = mmap(NULL, pages * PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m->va == MAP_FAILED)
		die("mmap of %zu pages: %s", pages, strerror(errno));
	madvise(m->va, pages * PAGE_BYTES, MADV_NOHUGEPAGE);
	memset(m->va, 0, pages * PAGE_BYTES); /* a private page of its own, not the zero page */
	if (mlock(m->va, pages * PAGE_BYTES) < 0)
		die("mlock: %s", strerror(errno));
	m->pa = calloc(pages, sizeof *m->pa);
	if (!m->pa)
		die("out of memory");
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		die("/proc/self/pagemap: %s", strerror(errno));
	for (size_t i = 0; i < pages; i++) {
		uint64_t ent;
		off_t off = (off_t)((uintptr_t)(m->va + i * PAGE_BYTES) / PAGE_BYTES * 8);
		if (pread(fd, &ent, 8, off) != 8)
			die("/proc/self/pagemap: %s", strerror(errno));
		uint64_t pfn = ent & ((1ull << 55) - 1);
		if (!(ent >> 63) || pfn == 0)
			die("no physical address for a locked page (pagemap shows PFNs to root only)");
		m->pa[i] = pfn * PAGE_BYTES;
		if (limit && m->pa[i] + PAGE_BYTES > limit)
			die("page at physical 0x%" PRIx64 " is above 0x%" PRIx64 ", out of the device's reach",
			    m->pa[i], limit);
	}
	close(fd);
}

bool devmem_read(uint64_t addr, size_t n, uint8_t *out)
{
	int fd = open("/dev/mem", O_RDONLY | O_SYNC);
	if (fd < 0)
		return false;
	uint64_t base = addr & ~(uint64_t)(PAGE_BYTES - 1);
	size_t len = (size_t)(addr - base) + n;
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)base);
	close(fd);
	if (p == MAP_FAILED)
		return false;
	memcpy(out, (uint8_t *)p + (addr - base), n);
	munmap(p, len);
	return true;
}

volatile void *devmem_map(uint64_t addr, size_t n)
{
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0)
		return NULL;
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)addr);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

/* ---- CPUs ---- */

int ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

const char *atk_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "%s: %s needs a value\n", atk_name, argv[*i]);
		atk_usage();
	}
	return argv[++*i];
}

bool atk_common_option(int argc, char **argv, int *i, const char **dev, bool *unbind)
{
	const char *a = argv[*i];
	if (!strcmp(a, "--dev"))
		*dev = atk_value(argc, argv, i);
	else if (!strcmp(a, "--unbind"))
		*unbind = true;
	else if (!strcmp(a, "--timeout"))
		timeout_ms = (long)num(atk_value(argc, argv, i), "timeout");
	else
		return false;
	return true;
}
