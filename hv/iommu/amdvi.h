/*
 * AMD-Vi layouts (AMD I/O Virtualization Technology (IOMMU) Specification #48882, rev. 3):
 * the MMIO registers (§3.4), device table entries (§2.2.2), page-table entries (§2.2.3),
 * commands (§2.4) and event log entries (§2.5). Encoders are pure inline functions so host
 * tests check them.
 */
#ifndef PARAPET_AMDVI_H
#define PARAPET_AMDVI_H

#include "mm/pagetable.h"

/* MMIO registers (§3.4); the window is 16 KiB, 512 KiB with performance counters. */
#define AMDVI_DEV_TABLE 0x0000 /* base 51:12, size 8:0 (4 KiB units - 1) */
#define AMDVI_CMD_BUF 0x0008   /* base 51:12, ComLen 59:56 (log2 entries, >= 8) */
#define AMDVI_EVT_LOG 0x0010   /* base 51:12, EventLen 59:56 */
#define AMDVI_CONTROL 0x0018
#define AMDVI_EXCL_BASE 0x0020 /* bit 0 ExEn: DMA to the range would bypass translation */
#define AMDVI_EXCL_LIMIT 0x0028
#define AMDVI_EFR 0x0030      /* extended feature register */
#define AMDVI_CMD_HEAD 0x2000 /* byte offsets into the ring, bits 18:4 */
#define AMDVI_CMD_TAIL 0x2008
#define AMDVI_EVT_HEAD 0x2010
#define AMDVI_EVT_TAIL 0x2018
#define AMDVI_STATUS 0x2020
#define AMDVI_REGS_LEN 0x4000
#define AMDVI_REGS_LEN_PC 0x80000
#define AMDVI_RING_LEN(log2_entries) ((u64)(log2_entries) << 56)

#define CTRL_IOMMU_EN (1ull << 0)
#define CTRL_EVT_LOG_EN (1ull << 2)
#define CTRL_COHERENT (1ull << 10) /* device table fetches snoop the caches */
#define CTRL_CMD_BUF_EN (1ull << 12)
#define STATUS_EVT_OVERFLOW (1ull << 0) /* write 1 to clear */
#define EFR_IA_SUP (1ull << 6)          /* INVALIDATE_IOMMU_ALL */
#define EFR_PC_SUP (1ull << 9)          /* performance counters: the 512 KiB window */

/* Device table entry (§2.2.2): 256 bits; interrupt remapping (quads 2, 3) left off (IV = 0),
 * device-initiated port I/O and system management messages aborted (IoCtl, SysMgt = 0). */
#define DTE_V (1ull << 0)
#define DTE_TV (1ull << 1)
#define DTE_MODE(n) ((u64)(n) << 9) /* levels of the table; 0: no table, IR/IW decide */
#define DTE_IR (1ull << 61)
#define DTE_IW (1ull << 62)
#define DTE_ENTRIES 65536
#define DTE_BYTES 32

/* Entries of the I/O page tables (§2.2.3): PR bit 0, next level 11:9 (0 in a leaf of any level:
 * a 2 MiB page at level 2), address 51:12, IR bit 61, IW bit 62, checked at every level. */
#define AMDVI_PR (1ull << 0)
#define AMDVI_IR (1ull << 61)
#define AMDVI_IW (1ull << 62)
#define AMDVI_PT_FORMAT                                                                       \
	{                                                                                     \
		.top_shift = 39, .table = AMDVI_PR | AMDVI_IR | AMDVI_IW, .next_level = true, \
		.rw = AMDVI_IR | AMDVI_IW                                                     \
	}
#define AMDVI_MODE 4 /* four levels: top_shift 39 */

/* The entry of a device in domain `id` whose 4-level table is at `root`; root 0: blocked
 * (V = 1, TV = 1, mode 0, IR = IW = 0). V = 0 would let the device's DMA through untranslated. */
static inline void amdvi_dte(u64 e[4], u64 root, u16 id)
{
	e[0] = DTE_V | DTE_TV | (root ? (root & PTE_ADDR) | DTE_MODE(AMDVI_MODE) | DTE_IR | DTE_IW : 0);
	e[1] = root ? id : 0;
	e[2] = e[3] = 0;
}

/* Commands (§2.4): 128 bits, opcode in bits 63:60. */
#define CMD_COMPLETION_WAIT 1ull
#define CMD_INV_DEVTAB_ENTRY 2ull
#define CMD_INV_IOMMU_PAGES 3ull
#define CMD_INV_IOMMU_ALL 8ull
#define CMD_OP(op) ((op) << 60)
#define CW_STORE (1ull << 0)                      /* store data to the 8-byte aligned address */
#define INV_ALL_PAGES (0x7FFFFFFFFFFFF000ull | 3) /* every address: S = 1, PDE = 1 */

struct amdvi_cmd {
	u64 q[2];
};
_Static_assert(sizeof(struct amdvi_cmd) == 16, "commands are 128 bits");

static inline struct amdvi_cmd amdvi_completion_wait(u64 pa, u64 data)
{
	return (struct amdvi_cmd){ { (pa & 0x000FFFFFFFFFFFF8ull) | CW_STORE | CMD_OP(CMD_COMPLETION_WAIT), data } };
}

static inline struct amdvi_cmd amdvi_inv_dte(u16 devid)
{
	return (struct amdvi_cmd){ { devid | CMD_OP(CMD_INV_DEVTAB_ENTRY), 0 } };
}

static inline struct amdvi_cmd amdvi_inv_pages(u16 domain)
{
	return (struct amdvi_cmd){ { (u64)domain << 32 | CMD_OP(CMD_INV_IOMMU_PAGES), INV_ALL_PAGES } };
}

/* Event log entries (§2.5): 128 bits; device ID 15:0, flags 59:48, event code 63:60, address. */
#define EVT_IO_PAGE_FAULT 2u
#define EVT_RW (1ull << 53) /* IO_PAGE_FAULT: the access was a write */

struct amdvi_event {
	u64 q[2];
};
_Static_assert(sizeof(struct amdvi_event) == 16, "event log entries are 128 bits");

static inline unsigned amdvi_event_code(const struct amdvi_event *e)
{
	return (unsigned)(e->q[0] >> 60);
}
static inline u16 amdvi_event_devid(const struct amdvi_event *e)
{
	return (u16)e->q[0];
}
static inline bool amdvi_event_write(const struct amdvi_event *e)
{
	return amdvi_event_code(e) == EVT_IO_PAGE_FAULT && (e->q[0] & EVT_RW);
}

#endif
