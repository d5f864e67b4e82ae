/*
 * Intel VT-d DMA remapping (Intel Virtualization Technology for Directed I/O, Architecture
 * Specification, rev. 4): legacy-mode root and context tables (§9.1, §9.3) over one shared set
 * of second-level tables (§9.8), register-based invalidation (§6.5.1, §10.4.7-8), fault
 * recording registers polled (§7.2, §10.4.14). Interrupt remapping is left as firmware left it.
 */
#include "iommu/dmar.h"
#include "core/log.h"
#include "core/pgalloc.h"
#include "core/x86.h"

/* Registers (§10.4). */
#define VTD_CAP 0x08
#define VTD_ECAP 0x10
#define VTD_GCMD 0x18
#define VTD_GSTS 0x1C
#define VTD_RTADDR 0x20
#define VTD_CCMD 0x28
#define VTD_FSTS 0x34
#define VTD_FECTL 0x38

#define CAP_RWBF (1ull << 4)
#define CAP_SAGAW(c) (((c) >> 8) & 0x1F) /* bit 1: 39-bit 3-level, bit 2: 48-bit 4-level */
#define CAP_FRO(c) ((((c) >> 24) & 0x3FF) * 16)
#define CAP_SLLPS(c) (((c) >> 34) & 0xF) /* bit 0: 2 MiB, bit 1: 1 GiB */
#define CAP_NFR(c) ((((c) >> 40) & 0xFF) + 1)
#define ECAP_C (1ull << 0) /* page walks snoop the caches */
#define ECAP_IRO(e) ((((e) >> 8) & 0x3FF) * 16)

/* GCMD and GSTS share bit positions; GSTS bits 30, 29, 27, 24 report one-shot commands. */
#define GSTS_TES (1u << 31)
#define GSTS_RTPS (1u << 30)
#define GSTS_WBFS (1u << 27)
#define GSTS_QIES (1u << 26)
#define GCMD_ONESHOT_MASK 0x96FFFFFFu

#define CCMD_ICC (1ull << 63)
#define CCMD_GLOBAL (1ull << 61)
#define IOTLB_IVT (1ull << 63)
#define IOTLB_GLOBAL (1ull << 60)
#define IOTLB_DR (1ull << 49)
#define IOTLB_DW (1ull << 48)
#define FSTS_PFO (1u << 0)
#define FSTS_PPF (1u << 1)
#define FECTL_IM (1u << 31)

/* Root and context entries (§9.1, §9.3): 128 bits each. */
#define ENTRY_P 1ull
#define CTX_AW(levels) ((u64)(levels)-2) /* 1: 39-bit 3-level, 2: 48-bit 4-level */
#define CTX_DID(id) ((u64)(id) << 8)

/* Second-level entries: bit 0 Read, bit 1 Write, bit 7 a large page (§9.8). */
#define SL_R (1ull << 0)
#define SL_W (1ull << 1)
#define SL_PS (1ull << 7)
static const struct pt_format sl_4level = { .top_shift = 39, .table = SL_R | SL_W, .large = SL_PS, .rw = SL_R | SL_W };
static const struct pt_format sl_3level = { .top_shift = 30, .table = SL_R | SL_W, .large = SL_PS, .rw = SL_R | SL_W };

#define WAIT_LOOPS 10000000u

static struct dmar_info dmar;
static u64 *root; /* 256 root entries, one per bus */
static unsigned levels;
static bool coherent = true;

static volatile u32 *r32(unsigned u, u32 off)
{
	return phys_ptr(dmar.units[u].base + off);
}
static volatile u64 *r64(unsigned u, u32 off)
{
	return phys_ptr(dmar.units[u].base + off);
}

static bool wait32(unsigned u, u32 off, u32 mask, u32 want)
{
	for (u32 i = 0; i < WAIT_LOOPS; i++) {
		if ((*r32(u, off) & mask) == want)
			return true;
		cpu_relax();
	}
	LOG("vtd: unit %u: register %x did not reach %x\n", u, off, want);
	return false;
}

static bool wait64_clear(unsigned u, u32 off, u64 bit)
{
	for (u32 i = 0; i < WAIT_LOOPS; i++) {
		if (!(*r64(u, off) & bit))
			return true;
		cpu_relax();
	}
	LOG("vtd: unit %u: register %x bit did not clear\n", u, off);
	return false;
}

/* Set or clear one persistent GCMD bit, or issue one one-shot command (§10.4.4). */
static bool gcmd(unsigned u, u32 bit, bool on, u32 status_bit)
{
	u32 v = (*r32(u, VTD_GSTS) & GCMD_ONESHOT_MASK & ~bit) | (on ? bit : 0);
	*r32(u, VTD_GCMD) = v;
	return wait32(u, VTD_GSTS, status_bit, on ? status_bit : 0);
}

static void flush_tables(void)
{
	if (!coherent)
		__asm__ volatile("wbinvd" ::: "memory");
}

static bool invalidate(unsigned u)
{
	u64 ecap = *r64(u, VTD_ECAP);
	if ((*r64(u, VTD_CAP) & CAP_RWBF) && !gcmd(u, GSTS_WBFS, true, GSTS_WBFS))
		return false;
	*r64(u, VTD_CCMD) = CCMD_ICC | CCMD_GLOBAL;
	if (!wait64_clear(u, VTD_CCMD, CCMD_ICC))
		return false;
	*r64(u, ECAP_IRO(ecap) + 8) = IOTLB_IVT | IOTLB_GLOBAL | IOTLB_DR | IOTLB_DW;
	return wait64_clear(u, ECAP_IRO(ecap) + 8, IOTLB_IVT);
}

static bool probe(acpi_map_fn map, u64 table, struct iommu_hw *hw)
{
	u32 len;
	const u8 *t = acpi_table(map, table, &len);
	const char *err = t ? dmar_parse(t, len, &dmar) : "table unreadable";
	if (err) {
		LOG("vtd: DMAR refused: %s\n", err);
		return false;
	}
	u32 sagaw = 0x1F, sllps = 0xF;
	for (unsigned u = 0; u < dmar.nunits; u++) {
		if (dmar.units[u].segment) {
			LOG("vtd: unit at %lx serves PCI segment %u; Parapet handles segment 0 only\n",
			    dmar.units[u].base, dmar.units[u].segment);
			return false;
		}
		u64 cap = *r64(u, VTD_CAP), ecap = *r64(u, VTD_ECAP);
		if (cap == ~0ull) {
			LOG("vtd: no registers at %lx\n", dmar.units[u].base);
			return false;
		}
		sagaw &= CAP_SAGAW(cap);
		sllps &= CAP_SLLPS(cap);
		coherent &= (ecap & ECAP_C) != 0;
		LOG("vtd: unit %u at %lx: version %x cap %lx ecap %lx%s\n", u, dmar.units[u].base, *r32(u, 0), cap,
		    ecap, dmar.units[u].flags & DRHD_INCLUDE_PCI_ALL ? " (all other devices)" : "");
		hw->regs[hw->nregs].base = dmar.units[u].base;
		hw->regs[hw->nregs++].len = dmar.units[u].len;
	}
	levels = sagaw & 4 ? 4 : sagaw & 2 ? 3 : 0;
	if (!levels) {
		LOG("vtd: no 3- or 4-level table width common to every unit (SAGAW %x)\n", sagaw);
		return false;
	}
	hw->fmt = levels == 4 ? &sl_4level : &sl_3level;
	hw->max_shift = sllps & 2 ? PAGE_1G : sllps & 1 ? PAGE_2M : PAGE_4K;
	for (unsigned i = 0; i < dmar.nrmrr; i++) {
		hw->fixed[hw->nfixed].base = dmar.rmrr[i].base;
		hw->fixed[hw->nfixed++].end = dmar.rmrr[i].end;
	}
	root = phys_ptr(pgalloc(1));
	return true;
}

static bool attach(u16 rid, const struct dma_domain *d)
{
	u64 *re = &root[2 * (rid >> 8)];
	if (!(re[0] & ENTRY_P))
		re[0] = pgalloc(1) | ENTRY_P;
	u64 *ce = (u64 *)phys_ptr(re[0] & ~0xFFFull) + 2 * (rid & 0xFF);
	/* A live entry is made not present before it changes (§6.5.3.3: the caller flushes). */
	ce[0] = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	ce[1] = CTX_AW(levels) | CTX_DID(d->id);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	ce[0] = d->root | ENTRY_P; /* TT = 00: untranslated requests through the tables */
	return true;
}

static void flush(void)
{
	flush_tables();
	for (unsigned u = 0; u < dmar.nunits; u++)
		invalidate(u);
}

static bool enable(void)
{
	flush_tables();
	for (unsigned u = 0; u < dmar.nunits; u++) {
		*r32(u, VTD_FECTL) = FECTL_IM; /* no fault interrupts: Parapet polls */
		/* Queued invalidation (if firmware left it on) excludes the register-based kind. */
		if ((*r32(u, VTD_GSTS) & GSTS_QIES) && !gcmd(u, GSTS_QIES, false, GSTS_QIES))
			return false;
		*r64(u, VTD_RTADDR) = (u64)(uintptr_t)root; /* TTM 00: legacy mode */
		if (!gcmd(u, GSTS_RTPS, true, GSTS_RTPS) || !invalidate(u) || !gcmd(u, GSTS_TES, true, GSTS_TES))
			return false;
	}
	return true;
}

/* Fault recording registers (§10.4.14): F bit 127, type bit 126 (1 = read), reason 103:96,
 * source ID 79:64, page address 63:12. */
static void poll(void)
{
	for (unsigned u = 0; u < dmar.nunits; u++) {
		u32 fsts = *r32(u, VTD_FSTS);
		if (!(fsts & (FSTS_PPF | FSTS_PFO)))
			continue;
		u64 cap = *r64(u, VTD_CAP);
		unsigned n = (unsigned)CAP_NFR(cap), i = (fsts >> 8) & 0xFF;
		for (unsigned k = 0; k < n; k++, i = (i + 1) % n) {
			u32 off = (u32)CAP_FRO(cap) + 16 * i;
			u64 hi = *r64(u, off + 8);
			if (!(hi & (1ull << 63)))
				break;
			iommu_fault((u16)hi, *r64(u, off) & ~0xFFFull, !(hi & (1ull << 62)),
			    (unsigned)(hi >> 32) & 0xFF);
			*r32(u, off + 12) = 1u << 31; /* F is write-1-to-clear */
		}
		*r32(u, VTD_FSTS) = FSTS_PFO;
	}
}

const struct iommu_ops vtd_ops = {
	.name = "VT-d",
	.sig = "DMAR",
	.probe = probe,
	.attach = attach,
	.enable = enable,
	.flush = flush,
	.poll = poll,
};
