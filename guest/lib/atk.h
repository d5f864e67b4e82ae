/*
 * Shared by the test guest's device attack tools (ataatk, ahciatk; docs/guest.md): result
 * lines and errors, SHA-256, time, sysfs text files, a PCI function through sysfs and through
 * ports 0xCF8/0xCFC, locked DMA pages with their physical addresses, /dev/mem, CPU pinning and
 * argument parsing. Each tool sets atk_name (the prefix of every line it prints) and atk_usage.
 */
#ifndef GUEST_LIB_ATK_H
#define GUEST_LIB_ATK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


/* ---- output and errors ---- */

/* The tool's name, "ataatk" or "ahciatk": every line starts with it. */
extern const char *atk_name;
/* Prints the tool's usage and exits 2 (set by the tool; num() calls it on a bad number). */
extern void (*atk_usage)(void);

/* One result line on stdout: "NAME: " then the formatted text. */
void result(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "NAME: error: ..." on stderr, exit status 1. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* "NAME: warning: ..." on stderr. */
void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- SHA-256 (FIPS 180-4) and hex ---- */

/* Writes 64 hex digits and a NUL to out. */
void sha256_hex(const void *data, size_t n, char out[65]);
/* The first min(n, 16) bytes as hex (a static buffer). */
const char *first_hex(const uint8_t *p, size_t n);
/*
 * Parses HEX (an even number of hex digits, optionally after 0x; at most max bytes) into out;
 * returns the byte count, 0 when the text is not such a pattern.
 */
size_t parse_hex(const char *text, uint8_t *out, size_t max);

/* ---- time ---- */

/* Every wait on the hardware gives up after this many milliseconds (--timeout). */
extern long timeout_ms;
uint64_t now_ms(void);
uint64_t now_us(void);

/* ---- files ---- */

/* Copies src into dst[n], cut if too long. */
void copy_str(char *dst, size_t n, const char *src);
/* A small text file without its trailing blanks; -1 when it cannot be read. */
int read_text(const char *path, char *buf, size_t n);
int write_text(const char *path, const char *text);
void write_file(const char *path, const void *buf, size_t n);
void *xmalloc(size_t n);
/* A number (decimal, 0x hex, 0 octal); a bad one prints the usage. */
uint64_t num(const char *s, const char *what);

/* ---- options ---- */

/* The value after option argv[*i] (*i moves past it); prints the usage when there is none. */
const char *atk_value(int argc, char **argv, int *i);
/* The options every tool takes: --dev BDF (the controller), --unbind (its Linux driver let go
 * of first), --timeout MS. True when argv[*i] was one of them. */
bool atk_common_option(int argc, char **argv, int *i, const char **dev, bool *unbind);

/* ---- PCI ---- */

struct pcifn {
	char bdf[32]; /* DDDD:BB:DD.F */
	unsigned domain, bus, dev, fn;
	char path[128];  /* /sys/bus/pci/devices/BDF */
	char driver[64]; /* "" when no driver is bound */
};

/*
 * The function whose class code, masked with `mask`, equals `cls` (the lowest address when
 * several do), or the one named `want` ("DDDD:BB:DD.F" or "BB:DD.F"; NULL: any). False if none.
 */
bool pci_find(struct pcifn *f, const char *want, uint32_t cls, uint32_t mask);
/* Configuration space through the sysfs config file (dies when that fails). */
uint32_t pci_cfg_read(const struct pcifn *f, unsigned off, unsigned size);
void pci_cfg_write(const struct pcifn *f, unsigned off, unsigned size, uint32_t v);
/* Configuration mechanism #1 (ports 0xCF8/0xCFC), dword-aligned: needs need_io(). */
uint32_t cf8_read32(const struct pcifn *f, unsigned off);
void cf8_write32(const struct pcifn *f, unsigned off, uint32_t v);
/* The function's page of the PCIe enhanced configuration space (ECAM), from the ACPI MCFG
 * table; 0 when there is none (pc). */
uint64_t pci_ecam_addr(const struct pcifn *f);
/* Unbinds the function from its driver, as `echo BDF > .../driver/unbind`. */
void pci_unbind(struct pcifn *f);
/* Binds it to `driver`; 0 or -1 with errno. */
int pci_bind(struct pcifn *f, const char *driver);
/* iopl(3), once. */
void need_io(void);

/* ---- memory ---- */

/* Locked private pages and the physical address of each (from /proc/self/pagemap). */
struct dmamem {
	uint8_t *va;
	size_t pages;
	uint64_t *pa;
};

/* Dies when a page lies at or above `limit` (0: no limit). */
void dma_alloc(struct dmamem *m, size_t pages, uint64_t limit);
/* Reads [addr, addr + n) through /dev/mem into out; false when that is refused. */
bool devmem_read(uint64_t addr, size_t n, uint8_t *out);
/* Maps [addr, addr + n) of /dev/mem (page-aligned addr) uncached; NULL when refused. */
volatile void *devmem_map(uint64_t addr, size_t n);

/* ---- CPUs ---- */

int ncpus(void);
/* Pins the calling thread to one CPU. */
void pin(int cpu);

#endif
