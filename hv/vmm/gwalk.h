/*
 * Guest linear -> guest-physical translation by walking the guest's own page tables, the way
 * the processor would (AMD APM vol. 2 ch. 5, Intel SDM vol. 3 ch. 4): real mode and protected
 * mode without paging (no translation), 32-bit paging with 4 MiB pages (PSE, PSE-36), PAE, and
 * 4- or 5-level long-mode paging. Present, write (CR0.WP), user, NX, SMEP/SMAP and reserved
 * bits are checked; a refused access yields the #PF error code and faulting address. Accessed
 * and dirty bits are set as the processor would set them.
 *
 * Every guest-physical access goes through gw_map: gmem_map in the hypervisor (guest RAM only,
 * never MMIO or Parapet's memory); host tests and fuzzers substitute fake memory. gw_map_rom maps
 * what is not RAM for the two callers that have checked it: the BIOS area for instruction fetch,
 * and a write-trapped device page for mmio.c's reads of it.
 */
#ifndef PARAPET_GWALK_H
#define PARAPET_GWALK_H

#include "core/types.h"

struct vcpu;

#ifdef HOST_TEST
extern void *(*gw_map)(u64 gpa, u64 len);
extern void *(*gw_map_rom)(u64 gpa, u64 len);
#else
#include "vmm/gmem.h"
#define gw_map gmem_map
static inline void *gw_map_rom(u64 gpa, u64 len)
{
	(void)len;
	return phys_ptr(gpa);
}
#endif

/* What a walk depends on; gw_regs_of() takes it from a vCPU. */
struct gw_regs {
	u64 cr0, cr3, cr4, efer, rflags;
	u8 cpl;
	u8 maxphyaddr; /* physical address width: bits above it are reserved in entries */
};

/* Access kinds (may be or-ed). A CPL 3 access is a user access. */
#define GW_READ 0u
#define GW_WRITE 1u
#define GW_FETCH 2u

/* #PF error code bits. */
#define PF_P (1u << 0) /* the page was present: a protection violation */
#define PF_W (1u << 1)
#define PF_U (1u << 2)
#define PF_RSVD (1u << 3)
#define PF_I (1u << 4)

enum gw_result {
	GW_OK = 0,
	GW_PAGE_FAULT, /* *f holds the error code and the address for CR2 */
	GW_NOT_RAM,    /* a paging structure is not guest RAM: the walk cannot be done */
};

struct gw_fault {
	u32 error;
	u64 addr;
};

void gw_regs_of(const struct vcpu *v, struct gw_regs *r);
/* The processor's physical address width (CPUID 80000008h), read once at init. */
void gw_init(void);

/* Translate linear address la for an access of kind `access`. */
enum gw_result gwalk(const struct gw_regs *r, u64 la, unsigned access, u64 *gpa, struct gw_fault *f);

#define GW_COPY_MAX (64 * 1024)

/*
 * Copy len (<= GW_COPY_MAX) bytes between guest linear memory at la and buf (to_guest: buf -> guest), page by
 * page; nothing is copied unless every page translates and is guest RAM. Returns GW_OK,
 * GW_PAGE_FAULT (*f set) or GW_NOT_RAM (a page table or the data is not RAM).
 */
enum gw_result gw_copy(const struct gw_regs *r, u64 la, void *buf, unsigned len, unsigned access, bool to_guest,
    struct gw_fault *f);

/*
 * Fetch up to len (<= 15) instruction bytes at CS:RIP. *got tells how many were fetched: the
 * bytes up to the first page that does not translate. The result is that page's (GW_OK when
 * all len were fetched). Code may also be fetched from the legacy BIOS area 0xC0000-0xFFFFF
 * (read-only memory or its shadow), never from other memory that is not RAM.
 */
enum gw_result gw_fetch_insn(const struct vcpu *v, u8 *buf, unsigned len, unsigned *got, struct gw_fault *f);

/*
 * Segmentation, logical -> linear (AMD APM vol. 2 §4.12, Intel SDM vol. 3 §5.3), for n elements of
 * size bytes from offset start in segment s (upward, or downward when down), each within amask (the
 * address size): how many pass the type checks (present, code/data, writable for write, readable
 * code) and the limit (expand-down included; real and virtual-8086 mode: the limit only; 64-bit
 * code: none). *base is the segment base to add (64-bit code: FS and GS only).
 */
u64 gw_seg_fit(const struct vcpu *v, int s, u64 start, unsigned size, bool down, bool write, u64 amask, u64 n,
    u64 *base);
/* Elements (of n wanted, from offset start) whose bytes all lie in offsets [lo, hi]. */
u64 gw_fit(u64 start, u64 lo, u64 hi, unsigned size, bool down, u64 n);
/* la is canonical: bits 63:47 (LA57: 63:56) all equal. */
bool gw_canonical(u64 la, bool la57);

/* The default operand/address size of the code the vCPU runs (enum cpu_mode in decode.h). */
int vcpu_code_mode(const struct vcpu *v);

#endif
