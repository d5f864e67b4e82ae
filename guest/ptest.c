/*
 * ptest: the test guest's probe tool.
 *
 * Each sub-command does one thing and prints one result line made of
 * `key=value` words (or `ok`), which a test harness on the host parses.
 * Numbers on the command line are decimal or 0x-prefixed hexadecimal.
 *
 * Exit status: 0 when the operation worked, 1 when it printed an error=...
 * or signal=... result, 2 on a usage error.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *errno_name(int err)
{
	static char buf[32];
	const char *name = strerrorname_np(err);

	if (name)
		return name;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

static void usage(void)
{
	fputs("usage:\n"
	      "  ptest cpuid LEAF [SUBLEAF]\n"
	      "  ptest rdmsr CPU MSR\n"
	      "  ptest wrmsr CPU MSR VALUE\n"
	      "  ptest devmem-read BASE LEN\n"
	      "  ptest devmem-write BASE LEN BYTE\n"
	      "  ptest vmmcall-user [FUNCTION [RBX RCX]]\n"
	      "  ptest memmap\n"
	      "  ptest kcore-scan HEX...   (count each byte pattern in the RAM /proc/kcore shows)\n"
	      "  ptest fwcfg sig|dir\n"
	      "  ptest fwcfg read KEY LEN [OFFSET]\n"
	      "  ptest fwcfg find KEY LEN HEX\n"
	      "  ptest outb|outw|outl PORT VALUE   (one OUT; a reset or power-off write does not return)\n"
	      "  ptest inb|inw|inl PORT\n"
	      "  ptest sstep cpuid|inb PORT   (single-step one CPUID or IN in a traced child)\n"
	      "numbers are decimal or 0x-prefixed hexadecimal\n",
	    stderr);
	exit(2);
}

/* Parses a decimal or 0x-prefixed hexadecimal number; exits on junk. */
static uint64_t parse_num(const char *s)
{
	const char *digits = s;
	int base = 10;
	char *end;
	uint64_t v;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		digits = s + 2;
	}
	if (!isxdigit((unsigned char)digits[0])) {
		fprintf(stderr, "ptest: bad number '%s'\n", s);
		exit(2);
	}
	errno = 0;
	v = strtoull(digits, &end, base);
	if (errno || *end) {
		fprintf(stderr, "ptest: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static int cmd_cpuid(int argc, char **argv)
{
	uint32_t eax, ebx, ecx, edx;

	if (argc < 1 || argc > 2)
		usage();
	eax = (uint32_t)parse_num(argv[0]);
	ecx = argc == 2 ? (uint32_t)parse_num(argv[1]) : 0;
	__asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
	printf("eax=0x%08" PRIx32 " ebx=0x%08" PRIx32 " ecx=0x%08" PRIx32 " edx=0x%08" PRIx32 "\n", eax, ebx, ecx, edx);
	return 0;
}

static int open_msr(const char *cpu, int flags)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/cpu/%" PRIu64 "/msr", parse_num(cpu));
	return open(path, flags);
}

/* rdmsr CPU MSR / wrmsr CPU MSR VALUE through the msr driver. */
static int msr_access(int argc, char **argv, int write)
{
	uint64_t value = 0;
	off_t msr;
	ssize_t n;
	int fd;

	if (argc != (write ? 3 : 2))
		usage();
	msr = (off_t)parse_num(argv[1]);
	if (write)
		value = parse_num(argv[2]);
	fd = open_msr(argv[0], write ? O_WRONLY : O_RDONLY);
	if (fd < 0) {
		printf("error=%s\n", errno_name(errno));
		return 1;
	}
	errno = 0;
	n = write ? pwrite(fd, &value, sizeof(value), msr) : pread(fd, &value, sizeof(value), msr);
	int err = errno;
	close(fd);
	if (n != sizeof(value)) {
		printf("error=%s\n", errno_name(err ? err : EIO));
		return 1;
	}
	if (write)
		printf("ok\n");
	else
		printf("value=0x%016" PRIx64 "\n", value);
	return 0;
}

static int cmd_rdmsr(int argc, char **argv)
{
	return msr_access(argc, argv, 0);
}
static int cmd_wrmsr(int argc, char **argv)
{
	return msr_access(argc, argv, 1);
}

/* Faults while touching a mapping or running a probe instruction land here. */
static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_sig;

static void fault_handler(int sig)
{
	fault_sig = sig;
	siglongjmp(fault_jmp, 1);
}

static void catch_faults(void)
{
	static const int sigs[] = { SIGILL, SIGSEGV, SIGBUS };
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fault_handler;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGILL:
		return "SIGILL";
	case SIGSEGV:
		return "SIGSEGV";
	case SIGBUS:
		return "SIGBUS";
	default:
		return "SIG?";
	}
}

/* Maps [base, base+len) of /dev/mem; prints error=... and returns NULL on failure. */
static volatile uint8_t *map_devmem(uint64_t base, uint64_t len, int writable)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p;
	int fd;

	if (len == 0 || base % (uint64_t)page || len % (uint64_t)page) {
		printf("error=EINVAL\n");
		return NULL;
	}
	fd = open("/dev/mem", (writable ? O_RDWR : O_RDONLY) | O_SYNC);
	if (fd < 0) {
		printf("error=%s\n", errno_name(errno));
		return NULL;
	}
	p = mmap(NULL, len, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, (off_t)base);
	if (p == MAP_FAILED) {
		printf("error=%s\n", errno_name(errno));
		close(fd);
		return NULL;
	}
	close(fd);
	return p;
}

static int cmd_devmem_read(int argc, char **argv)
{
	/* static: kept intact across the siglongjmp of a fault */
	static uint8_t first[16];
	static uint64_t nonzero, fnv;
	uint64_t base, len, i;
	volatile uint8_t *p;

	if (argc != 2)
		usage();
	base = parse_num(argv[0]);
	len = parse_num(argv[1]);
	p = map_devmem(base, len, 0);
	if (!p)
		return 1;
	catch_faults();
	if (sigsetjmp(fault_jmp, 1)) {
		printf("error=%s\n", signal_name(fault_sig));
		return 1;
	}
	nonzero = 0;
	fnv = 0xcbf29ce484222325ULL; /* FNV-1a, 64 bit */
	for (i = 0; i < len; i++) {
		uint8_t b = p[i];

		if (i < sizeof(first))
			first[i] = b;
		nonzero += b != 0;
		fnv = (fnv ^ b) * 0x100000001b3ULL;
	}
	printf("bytes=%" PRIu64 " nonzero=%" PRIu64 " fnv=0x%016" PRIx64 " first=", len, nonzero, fnv);
	for (i = 0; i < sizeof(first) && i < len; i++)
		printf("%02x", first[i]);
	printf("\n");
	munmap((void *)p, len);
	return 0;
}

static int cmd_devmem_write(int argc, char **argv)
{
	uint64_t base, len, i;
	volatile uint8_t *p;
	uint8_t byte;

	if (argc != 3)
		usage();
	base = parse_num(argv[0]);
	len = parse_num(argv[1]);
	byte = (uint8_t)parse_num(argv[2]);
	p = map_devmem(base, len, 1);
	if (!p)
		return 1;
	catch_faults();
	if (sigsetjmp(fault_jmp, 1)) {
		printf("error=%s\n", signal_name(fault_sig));
		return 1;
	}
	for (i = 0; i < len; i++)
		p[i] = byte;
	munmap((void *)p, len);
	printf("ok\n");
	return 0;
}

static int cmd_vmmcall_user(int argc, char **argv)
{
	volatile uint64_t rax = 0;
	volatile uint64_t fn = 0, rbx = 0, rcx = 0;

	if (argc != 0 && argc != 1 && argc != 3)
		usage();
	if (argc >= 1)
		fn = parse_num(argv[0]);
	if (argc == 3) {
		rbx = parse_num(argv[1]);
		rcx = parse_num(argv[2]);
	}
	catch_faults();
	if (sigsetjmp(fault_jmp, 1)) {
		printf("signal=%s\n", signal_name(fault_sig));
		return 1;
	}
	{
		uint64_t a = fn, b = rbx, c = rcx, d = 0;

		__asm__ volatile(".byte 0x0f, 0x01, 0xd9" /* vmmcall */
				 : "+a"(a), "+b"(b), "+c"(c), "+d"(d)
				 :
				 : "memory");
		rax = a;
	}
	printf("returned rax=0x%016" PRIx64 "\n", rax);
	return 0;
}

/*
 * kcore-scan: every PT_LOAD segment of /proc/kcore that maps RAM (the direct map's segments;
 * the vmalloc and module areas are skipped by their size or address), read in 1 MiB chunks
 * that overlap by the longest pattern, and each pattern's occurrences counted. The patterns are
 * kept XORed with a mask, never whole in memory, so the scan does not find its own copy.
 */
#include <elf.h>

#define SCAN_PATTERNS 8
#define SCAN_CHUNK (1u << 20)
#define SCAN_MASK 0x5Au

/* Occurrences of the masked pattern p (n bytes) in buf whose last byte lies at or after `from`. */
static uint64_t count_masked(const uint8_t *buf, size_t len, const uint8_t *p, size_t n, size_t from)
{
	uint64_t hits = 0;

	for (const uint8_t *s = buf; s + n <= buf + len; s++) {
		s = memchr(s, p[0] ^ SCAN_MASK, (size_t)(buf + len - s));
		if (!s || s + n > buf + len)
			break;
		size_t k = 1;
		while (k < n && s[k] == (p[k] ^ SCAN_MASK))
			k++;
		if (k == n && (size_t)(s - buf) + n > from)
			hits++;
	}
	return hits;
}

static int cmd_kcore_scan(int argc, char **argv)
{
	uint8_t pat[SCAN_PATTERNS][256];
	size_t plen[SCAN_PATTERNS], maxlen = 0;
	uint64_t hits[SCAN_PATTERNS] = { 0 }, scanned = 0;
	int fd, i, segs = 0;
	Elf64_Ehdr eh;

	if (argc < 1 || argc > SCAN_PATTERNS)
		usage();
	for (i = 0; i < argc; i++) {
		size_t n = strlen(argv[i]);

		if (n == 0 || n % 2 || n / 2 > sizeof(pat[0]))
			usage();
		for (plen[i] = 0; plen[i] < n / 2; plen[i]++) {
			unsigned b;

			if (sscanf(argv[i] + 2 * plen[i], "%2x", &b) != 1)
				usage();
			pat[i][plen[i]] = (uint8_t)b ^ SCAN_MASK;
		}
		if (plen[i] > maxlen)
			maxlen = plen[i];
	}
	fd = open("/proc/kcore", O_RDONLY);
	if (fd < 0 || pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG)) {
		printf("error=%s\n", errno_name(errno));
		return 1;
	}
	uint8_t *buf = malloc(SCAN_CHUNK + maxlen);
	for (int p = 0; p < eh.e_phnum; p++) {
		Elf64_Phdr ph;

		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)p * eh.e_phentsize)) != sizeof(ph))
			break;
		/* RAM: the direct map (0xffff88..) holds it all; skip text/modules/vmalloc/vmemmap views */
		if (ph.p_type != PT_LOAD || ph.p_vaddr < 0xffff888000000000ull || ph.p_vaddr >= 0xffffc88000000000ull)
			continue;
		segs++;
		size_t carry = 0;
		for (uint64_t off = 0; off < ph.p_filesz; off += SCAN_CHUNK) {
			size_t want = ph.p_filesz - off < SCAN_CHUNK ? ph.p_filesz - off : SCAN_CHUNK;
			ssize_t got = pread(fd, buf + carry, want, (off_t)(ph.p_offset + off));

			if (got <= 0) {
				carry = 0;
				continue;
			}
			size_t n = carry + (size_t)got;
			for (i = 0; i < argc; i++) /* a match ending in the carried bytes was counted before */
				hits[i] += count_masked(buf, n, pat[i], plen[i], carry);
			scanned += (uint64_t)got;
			carry = maxlen - 1 < n ? maxlen - 1 : n;
			memmove(buf, buf + n - carry, carry);
		}
	}
	free(buf);
	close(fd);
	printf("segments=%d scanned=%" PRIu64, segs, scanned);
	for (i = 0; i < argc; i++)
		printf(" hits%d=%" PRIu64, i, hits[i]);
	printf("\n");
	return 0;
}

struct mm_entry {
	uint64_t start, end;
	char type[64];
};

static int read_line(const char *dir, const char *name, char *buf, size_t size)
{
	char path[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/sys/firmware/memmap/%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, (int)size, f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	return 0;
}

static int mm_cmp(const void *a, const void *b)
{
	const struct mm_entry *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

static int cmd_memmap(int argc, char **argv)
{
	struct mm_entry *ents = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	char buf[128];
	DIR *d;

	(void)argv;
	if (argc != 0)
		usage();
	d = opendir("/sys/firmware/memmap");
	if (!d) {
		printf("error=%s\n", errno_name(errno));
		return 1;
	}
	while ((de = readdir(d))) {
		struct mm_entry e;

		if (de->d_name[0] == '.')
			continue;
		if (read_line(de->d_name, "start", buf, sizeof(buf)))
			continue;
		e.start = strtoull(buf, NULL, 16);
		if (read_line(de->d_name, "end", buf, sizeof(buf)))
			continue;
		e.end = strtoull(buf, NULL, 16);
		if (read_line(de->d_name, "type", e.type, sizeof(e.type)))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			ents = realloc(ents, cap * sizeof(*ents));
			if (!ents) {
				printf("error=ENOMEM\n");
				return 1;
			}
		}
		ents[n++] = e;
	}
	closedir(d);
	qsort(ents, n, sizeof(*ents), mm_cmp);
	for (i = 0; i < n; i++)
		printf("start=0x%016" PRIx64 " end=0x%016" PRIx64 " type=%s\n", ents[i].start, ents[i].end,
		    ents[i].type);
	free(ents);
	return 0;
}

/*
 * QEMU's fw_cfg device through its I/O ports: selector 0x510 (16-bit), data 0x511 (bytes, from
 * the start of the selected item, zeros past its end), DMA address 0x514 (its 64-bit read
 * gives the signature "QEMU CFG").
 */
#define FWCFG_SEL 0x510
#define FWCFG_DATA 0x511
#define FWCFG_DMA 0x514

static int fwcfg_open(void)
{
	if (ioperm(FWCFG_SEL, 12, 1)) {
		printf("error=%s\n", errno_name(errno));
		return -1;
	}
	return 0;
}

static void fwcfg_read(unsigned int key, uint8_t *buf, size_t len)
{
	size_t i;

	outw(key, FWCFG_SEL);
	/* rep insb: under Parapet the data port is mediated, and one string instruction is one exit
	 * per block, where a loop of inb would be one exit per byte. */
	for (i = 0; i < len; i += 65536)
		insb(FWCFG_DATA, buf + i, len - i < 65536 ? len - i : 65536);
}

static void print_hex(const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		printf("%02x", b[i]);
}

static int cmd_fwcfg(int argc, char **argv)
{
	uint8_t sig[4], id[4], *buf, pat[64];
	uint64_t key, len, off = 0, i, hits = 0, at[8];
	size_t plen = 0;

	if (argc < 1)
		usage();
	if (!strcmp(argv[0], "sig") && argc == 1) {
		uint32_t hi, lo;

		if (fwcfg_open())
			return 1;
		fwcfg_read(0x00, sig, 4);
		fwcfg_read(0x01, id, 4);
		hi = __builtin_bswap32(inl(FWCFG_DMA));
		lo = __builtin_bswap32(inl(FWCFG_DMA + 4));
		printf("sig=%.4s id=0x%08x dma=%d dma_sig=0x%08x%08x\n", (char *)sig,
		    id[0] | id[1] << 8 | id[2] << 16 | (uint32_t)id[3] << 24, (id[0] >> 1) & 1, hi, lo);
		return 0;
	}
	if (!strcmp(argv[0], "dir") && argc == 1) {
		uint8_t n[4], e[64];
		uint32_t count, k;

		if (fwcfg_open())
			return 1;
		outw(0x19, FWCFG_SEL);
		for (k = 0; k < 4; k++)
			n[k] = inb(FWCFG_DATA);
		count = (uint32_t)n[0] << 24 | n[1] << 16 | n[2] << 8 | n[3];
		for (k = 0; k < count && k < 4096; k++) {
			for (i = 0; i < 64; i++)
				e[i] = inb(FWCFG_DATA);
			e[63] = 0;
			/* FWCfgFile: be32 size, be16 select, u16 reserved, name[56] */
			printf("key=0x%04x size=%u name=%s\n", e[4] << 8 | e[5],
			    (uint32_t)e[0] << 24 | e[1] << 16 | e[2] << 8 | e[3], (char *)e + 8);
		}
		printf("files=%u\n", count);
		return 0;
	}
	if (!strcmp(argv[0], "read") && (argc == 3 || argc == 4)) {
		key = parse_num(argv[1]);
		len = parse_num(argv[2]);
		if (argc == 4)
			off = parse_num(argv[3]);
	} else if (!strcmp(argv[0], "find") && argc == 4) {
		key = parse_num(argv[1]);
		len = parse_num(argv[2]);
		plen = strlen(argv[3]) / 2;
		if (plen == 0 || plen > sizeof(pat) || strlen(argv[3]) % 2)
			usage();
		for (i = 0; i < plen; i++) {
			unsigned int b;

			if (sscanf(argv[3] + 2 * i, "%2x", &b) != 1)
				usage();
			pat[i] = b;
		}
	} else {
		usage();
	}
	if (key > 0xffff || len > (64u << 20) || off > (64u << 20))
		usage();
	if (fwcfg_open())
		return 1;
	buf = malloc(off + len + 1);
	if (!buf) {
		printf("error=ENOMEM\n");
		return 1;
	}
	fwcfg_read(key, buf, off + len);
	if (plen) {
		for (i = 0; i + plen <= len; i++)
			if (!memcmp(buf + i, pat, plen) && hits++ < 8)
				at[hits - 1] = i;
		printf("key=0x%04" PRIx64 " scanned=%" PRIu64 " hits=%" PRIu64 " at=", key, len, hits);
		for (i = 0; i < hits && i < 8; i++)
			printf("%s%" PRIu64, i ? "," : "", at[i]);
		printf("%s\n", hits ? "" : "-");
	} else {
		printf("key=0x%04" PRIx64 " offset=%" PRIu64 " len=%" PRIu64 " bytes=", key, off, len);
		print_hex(buf + off, len);
		printf("\n");
	}
	free(buf);
	return 0;
}

/*
 * outb/outw/outl PORT VALUE, inb/inw/inl PORT: one port access from ring 3, after ioperm (ports
 * below 0x400) or iopl(3). A write that resets or powers off the machine never prints; so that
 * "ok" is not mistaken for a write that was swallowed, it is printed after the OUT.
 */
static int port_access(int argc, char **argv, int width, int write)
{
	uint64_t port, value = 0;

	if (argc != (write ? 2 : 1))
		usage();
	port = parse_num(argv[0]);
	if (write)
		value = parse_num(argv[1]);
	if (port > 0xffff || port + (unsigned)width > 0x10000 || (width < 4 && value >> (8 * width)) ||
	    value > 0xffffffffULL) {
		fprintf(stderr, "ptest: port or value out of range\n");
		exit(2);
	}
	if (port + (unsigned)width <= 0x400 ? ioperm((unsigned long)port, (unsigned long)width, 1) : iopl(3)) {
		printf("error=%s\n", errno_name(errno));
		return 1;
	}
	if (write) {
		fflush(stdout);
		if (width == 1)
			outb((uint8_t)value, (uint16_t)port);
		else if (width == 2)
			outw((uint16_t)value, (uint16_t)port);
		else
			outl((uint32_t)value, (uint16_t)port);
		printf("ok\n");
	} else {
		value = width == 1 ? inb((uint16_t)port) : width == 2 ? inw((uint16_t)port) : inl((uint16_t)port);
		printf("port=0x%04" PRIx64 " value=0x%0*" PRIx64 "\n", port, 2 * width, value);
	}
	return 0;
}

static int cmd_outb(int argc, char **argv)
{
	return port_access(argc, argv, 1, 1);
}
static int cmd_outw(int argc, char **argv)
{
	return port_access(argc, argv, 2, 1);
}
static int cmd_outl(int argc, char **argv)
{
	return port_access(argc, argv, 4, 1);
}
static int cmd_inb(int argc, char **argv)
{
	return port_access(argc, argv, 1, 0);
}
static int cmd_inw(int argc, char **argv)
{
	return port_access(argc, argv, 2, 0);
}
static int cmd_inl(int argc, char **argv)
{
	return port_access(argc, argv, 4, 0);
}

/*
 * sstep cpuid | sstep inb PORT: single-steps one instruction a hypervisor may complete itself
 * (CPUID; IN from PORT) in a traced child, as a debugger does (PTRACE_SINGLESTEP, RFLAGS.TF),
 * and prints where the child stopped: `at=0xA next=0xN`. The processor traps right after the
 * instruction (A == N); a hypervisor that completes it without the #DB trap lets the child run
 * one more instruction first.
 */
__asm__(".pushsection .text\n"
	"sstep_cpuid: cpuid\n"
	"sstep_cpuid_next: nop\n"
	"nop\n"
	"ud2\n"
	"sstep_in: inb %dx, %al\n"
	"sstep_in_next: nop\n"
	"nop\n"
	"ud2\n"
	".popsection\n");
extern const char sstep_cpuid[], sstep_cpuid_next[], sstep_in[], sstep_in_next[];

static int cmd_sstep(int argc, char **argv)
{
	const char *start = sstep_cpuid, *next = sstep_cpuid_next;
	struct user_regs_struct r;
	uint64_t port = 0;
	int status;
	pid_t pid;

	if (argc == 2 && !strcmp(argv[0], "inb")) {
		start = sstep_in;
		next = sstep_in_next;
		port = parse_num(argv[1]);
		if (port > 0xffff)
			usage();
	} else if (argc != 1 || strcmp(argv[0], "cpuid")) {
		usage();
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("error=%s\n", errno_name(errno));
		return 1;
	}
	if (pid == 0) {
		if (argc == 2 && (port < 0x400 ? ioperm((unsigned long)port, 1, 1) : iopl(3)))
			_exit(3);
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		raise(SIGSTOP);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
		printf("error=%s\n", WIFEXITED(status) && WEXITSTATUS(status) == 3 ? "no-io-permission" : "child");
		return 1;
	}
	ptrace(PTRACE_GETREGS, pid, NULL, &r);
	r.rip = (uintptr_t)start;
	r.orig_rax = (unsigned long long)-1; /* no system call to restart */
	r.rax = 0;
	r.rcx = 0;
	r.rdx = port;
	if (ptrace(PTRACE_SETREGS, pid, NULL, &r) || ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL)) {
		printf("error=%s\n", errno_name(errno));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return 1;
	}
	waitpid(pid, &status, 0);
	ptrace(PTRACE_GETREGS, pid, NULL, &r);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP) {
		printf("error=stop status=0x%x at=0x%llx\n", status, (unsigned long long)r.rip);
		return 1;
	}
	printf("at=0x%llx next=0x%llx\n", (unsigned long long)r.rip, (unsigned long long)(uintptr_t)next);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "cpuid", cmd_cpuid },
		{ "rdmsr", cmd_rdmsr },
		{ "wrmsr", cmd_wrmsr },
		{ "devmem-read", cmd_devmem_read },
		{ "devmem-write", cmd_devmem_write },
		{ "vmmcall-user", cmd_vmmcall_user },
		{ "memmap", cmd_memmap },
		{ "kcore-scan", cmd_kcore_scan },
		{ "fwcfg", cmd_fwcfg },
		{ "outb", cmd_outb },
		{ "outw", cmd_outw },
		{ "outl", cmd_outl },
		{ "inb", cmd_inb },
		{ "inw", cmd_inw },
		{ "inl", cmd_inl },
		{ "sstep", cmd_sstep },
	};
	size_t i;

	/* One result line per run; make sure it is out before any fault. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		usage();
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 2, argv + 2);
	usage();
	return 2;
}
