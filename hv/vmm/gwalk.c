/* Guest page walks: see gwalk.h. */
#include "vmm/gwalk.h"
#include "vmm/vcpu.h"
#include "core/string.h"
#include "core/x86.h"

#ifdef HOST_TEST
#include "vmm/gmem.h"
void *(*gw_map)(u64 gpa, u64 len) = gmem_map;
void *(*gw_map_rom)(u64 gpa, u64 len) = gmem_map;
#endif
#include "vmm/decode.h"

#define RFLAGS_VM (1ull << 17)
#define BIOS_AREA_START 0xC0000ull
#define BIOS_AREA_END 0x100000ull

#define CR0_WP (1ull << 16)
#define CR4_PSE (1ull << 4)
#define CR4_LA57 (1ull << 12)
#define CR4_SMEP (1ull << 20)
#define CR4_SMAP (1ull << 21)
#define RFLAGS_AC (1ull << 18)

#define E_P (1ull << 0)
#define E_W (1ull << 1)
#define E_U (1ull << 2)
#define E_A (1ull << 5)
#define E_D (1ull << 6)
#define E_PS (1ull << 7)
#define E_NX (1ull << 63)

static u8 phys_bits = 52;

void gw_init(void)
{
	phys_bits = (u8)cpu_phys_bits();
	if (phys_bits < 32 || phys_bits > 52)
		phys_bits = 52;
}

void gw_regs_of(const struct vcpu *v, struct gw_regs *r)
{
	*r = (struct gw_regs){ v->cr0, v->cr3, v->cr4, v->efer, v->rflags, v->cpl, phys_bits };
}

/* One paging-structure entry of the walk: where it is, for setting A/D bits afterwards. */
struct step {
	void *p;
	bool wide; /* 8-byte entry */
};

static void set_bits(const struct step *s, u64 bits)
{
	if (s->wide) {
		u64 *e = s->p;
		if ((__atomic_load_n(e, __ATOMIC_RELAXED) & bits) != bits)
			__atomic_fetch_or(e, bits, __ATOMIC_RELAXED);
	} else {
		u32 *e = s->p;
		if ((__atomic_load_n(e, __ATOMIC_RELAXED) & (u32)bits) != (u32)bits)
			__atomic_fetch_or(e, (u32)bits, __ATOMIC_RELAXED);
	}
}

static bool read_entry(u64 pa, bool wide, struct step *s, u64 *val)
{
	void *p = gw_map(pa, wide ? 8 : 4);
	if (!p)
		return false;
	s->p = p;
	s->wide = wide;
	*val = wide ? __atomic_load_n((u64 *)p, __ATOMIC_RELAXED) : __atomic_load_n((u32 *)p, __ATOMIC_RELAXED);
	return true;
}

static u64 bits(unsigned hi, unsigned lo) /* mask of bits hi..lo inclusive */
{
	return (hi >= 63 ? ~0ull : (1ull << (hi + 1)) - 1) & ~((1ull << lo) - 1);
}

enum gw_result gwalk(const struct gw_regs *r, u64 la, unsigned access, u64 *gpa, struct gw_fault *f)
{
	if (!(r->cr0 & CR0_PE) || !(r->cr0 & CR0_PG)) {
		*gpa = (r->efer & EFER_LMA) ? la : (la & 0xFFFFFFFFull);
		return GW_OK;
	}
	bool write = access & GW_WRITE, fetch = access & GW_FETCH, user = r->cpl == 3;
	bool nxe = r->efer & EFER_NXE, pae = r->cr4 & CR4_PAE, lma = r->efer & EFER_LMA;
	u32 err = (write ? PF_W : 0) | (user ? PF_U : 0) | (fetch && (nxe || (r->cr4 & CR4_SMEP)) ? PF_I : 0);
	unsigned pb = r->maxphyaddr >= 32 && r->maxphyaddr <= 52 ? r->maxphyaddr : 52;
	u64 rsvd_phys = bits(51, pb); /* address bits beyond the physical width */
	u64 addr_mask = bits(pb - 1, 12);
	struct step steps[5];
	unsigned nsteps = 0;
	bool rw = true, us = true, nx = false;
	u64 e, page_pa;
	unsigned page_shift;

	f->addr = la;
	if (!pae) {
		/* 32-bit paging: a page directory and page tables of 1024 4-byte entries. */
		u32 la32 = (u32)la;
		u64 pde_pa = (r->cr3 & 0xFFFFF000ull) + ((la32 >> 22) << 2);
		if (!read_entry(pde_pa, false, &steps[nsteps++], &e))
			return GW_NOT_RAM;
		if (!(e & E_P))
			goto not_present;
		rw &= !!(e & E_W), us &= !!(e & E_U);
		if ((e & E_PS) && (r->cr4 & CR4_PSE)) {
			/* 4 MiB page; PSE-36 puts physical bits 32+ in bits 13..20, bit 21 is reserved. */
			u64 hi = (e >> 13) & 0xFF;
			if ((e & (1ull << 21)) || (pb < 40 && (hi >> (pb - 32))))
				goto reserved;
			page_pa = (e & 0xFFC00000ull) | (hi << 32);
			page_shift = 22;
		} else {
			u64 pte_pa = (e & 0xFFFFF000ull) + (((la32 >> 12) & 0x3FF) << 2);
			if (!read_entry(pte_pa, false, &steps[nsteps++], &e))
				return GW_NOT_RAM;
			if (!(e & E_P))
				goto not_present;
			rw &= !!(e & E_W), us &= !!(e & E_U);
			page_pa = e & 0xFFFFF000ull;
			page_shift = 12;
		}
	} else {
		u64 nx_rsvd = nxe ? 0 : E_NX;
		u64 table;
		unsigned shift;
		if (!lma) {
			/* PAE: four PDPTEs at CR3[31:5], then 2 levels of 512 8-byte entries. */
			la &= 0xFFFFFFFFull;
			f->addr = la;
			/* The processor keeps no accessed bit in a PDPTE (bit 5 is reserved there). */
			u64 pdpte_pa = (r->cr3 & 0xFFFFFFE0ull) + ((la >> 30) & 3) * 8;
			struct step pdpte;
			if (!read_entry(pdpte_pa, true, &pdpte, &e))
				return GW_NOT_RAM;
			if (!(e & E_P))
				goto not_present;
			if (e & (rsvd_phys | E_NX | bits(8, 5) | bits(2, 1)))
				goto reserved;
			table = e & addr_mask;
			shift = 21;
		} else {
			table = r->cr3 & addr_mask;
			shift = (r->cr4 & CR4_LA57) ? 48 : 39;
		}
		for (;; shift -= 9) {
			if (!read_entry(table + ((la >> shift) & 511) * 8, true, &steps[nsteps++], &e))
				return GW_NOT_RAM;
			if (!(e & E_P))
				goto not_present;
			u64 rsvd = rsvd_phys | nx_rsvd;
			bool leaf = shift == 12 || ((e & E_PS) && (shift == 21 || shift == 30));
			if (shift >= 39 && (e & E_PS))
				goto reserved; /* PML4E/PML5E: PS must be zero */
			if (leaf && shift > 12)
				rsvd |= bits(shift - 1, 13); /* a large page's address is aligned */
			if (e & rsvd)
				goto reserved;
			rw &= !!(e & E_W), us &= !!(e & E_U);
			nx |= nxe && (e & E_NX);
			if (leaf) {
				page_pa = e & addr_mask & ~bits(shift - 1, 0);
				page_shift = shift;
				break;
			}
			table = e & addr_mask;
		}
	}

	/* Permissions, as accumulated over all levels. */
	if (user) {
		if (!us || (write && !rw))
			goto protection;
	} else {
		if (write && !rw && (r->cr0 & CR0_WP))
			goto protection;
		if (us && fetch && (r->cr4 & CR4_SMEP))
			goto protection;
		if (us && !fetch && (r->cr4 & CR4_SMAP) && !(r->rflags & RFLAGS_AC))
			goto protection;
	}
	if (fetch && nx)
		goto protection;

	for (unsigned i = 0; i < nsteps; i++)
		set_bits(&steps[i], E_A | (i == nsteps - 1 && write ? E_D : 0));
	*gpa = page_pa | (la & bits(page_shift - 1, 0));
	return GW_OK;

not_present:
	f->error = err;
	return GW_PAGE_FAULT;
reserved:
	f->error = err | PF_P | PF_RSVD;
	return GW_PAGE_FAULT;
protection:
	f->error = err | PF_P;
	return GW_PAGE_FAULT;
}

enum gw_result gw_copy(const struct gw_regs *r, u64 la, void *buf, unsigned len, unsigned access, bool to_guest,
    struct gw_fault *f)
{
	u8 *hp[GW_COPY_MAX / 4096 + 2];
	unsigned n = 0;
	if (len > GW_COPY_MAX)
		return GW_NOT_RAM;
	/* Translate every page first: all or nothing. */
	for (unsigned done = 0; done < len; n++) {
		u64 a = la + done, gpa;
		unsigned chunk = 4096 - (a & 4095);
		if (chunk > len - done)
			chunk = len - done;
		enum gw_result res = gwalk(r, a, access, &gpa, f);
		if (res != GW_OK)
			return res;
		hp[n] = gw_map(gpa, chunk);
		if (!hp[n])
			return GW_NOT_RAM;
		done += chunk;
	}
	u8 *b = buf;
	for (unsigned i = 0, done = 0; i < n; i++) {
		unsigned chunk = 4096 - ((la + done) & 4095);
		if (chunk > len - done)
			chunk = len - done;
		if (to_guest)
			memcpy(hp[i], b + done, chunk);
		else
			memcpy(b + done, hp[i], chunk);
		done += chunk;
	}
	return GW_OK;
}

u64 gw_fit(u64 start, u64 lo, u64 hi, unsigned size, bool down, u64 n)
{
	if (start < lo || start > hi || hi - start < size - 1)
		return 0;
	u64 k = down ? (start - lo) / size + 1 : (hi - start - (size - 1)) / size + 1;
	return k < n ? k : n;
}

u64 gw_seg_fit(const struct vcpu *v, int s, u64 start, unsigned size, bool down, bool write, u64 amask, u64 n,
    u64 *base)
{
	const struct vseg *sg = &v->seg[s];
	if (vcpu_code_mode(v) == MODE_64) {
		*base = (s == SEG_FS || s == SEG_GS) ? sg->base : 0;
		return gw_fit(start, 0, amask, size, down, n);
	}
	*base = sg->base;
	bool real = !(v->cr0 & CR0_PE) || (v->rflags & RFLAGS_VM);
	if (!real) {
		unsigned type = sg->attr & SEG_ATTR_TYPE;
		if ((sg->sel & ~3u) == 0 || !(sg->attr & SEG_ATTR_P) || !(sg->attr & SEG_ATTR_S))
			return 0;
		if (type & 8) { /* code: readable only, never writable */
			if (write || !(type & 2))
				return 0;
		} else if (write && !(type & 2)) {
			return 0;
		}
		if (!(type & 8) && (type & 4)) { /* expand-down data */
			u64 upper = (sg->attr & SEG_ATTR_DB) ? 0xFFFFFFFFull : 0xFFFF;
			return gw_fit(start, (u64)sg->limit + 1, upper < amask ? upper : amask, size, down, n);
		}
	}
	return gw_fit(start, 0, sg->limit < amask ? sg->limit : amask, size, down, n);
}

bool gw_canonical(u64 la, bool la57)
{
	unsigned bits = la57 ? 57 : 48;
	s64 x = (s64)(la << (64 - bits)) >> (64 - bits);
	return (u64)x == la;
}

int vcpu_code_mode(const struct vcpu *v)
{
	const struct vseg *cs = &v->seg[SEG_CS];
	if ((v->efer & EFER_LMA) && (cs->attr & SEG_ATTR_L))
		return MODE_64;
	if (!(v->cr0 & CR0_PE) || (v->rflags & RFLAGS_VM))
		return MODE_16;
	return (cs->attr & SEG_ATTR_DB) ? MODE_32 : MODE_16;
}

enum gw_result gw_fetch_insn(const struct vcpu *v, u8 *buf, unsigned len, unsigned *got, struct gw_fault *f)
{
	struct gw_regs r;
	gw_regs_of(v, &r);
	bool l64 = vcpu_code_mode(v) == MODE_64;
	u64 la = v->seg[SEG_CS].base + v->rip;
	*got = 0;
	if (len > INSN_MAX_LEN)
		len = INSN_MAX_LEN;
	while (*got < len) {
		u64 a = l64 ? la + *got : (la + *got) & 0xFFFFFFFFull, gpa;
		unsigned c = 4096 - (unsigned)(a & 4095);
		if (c > len - *got)
			c = len - *got;
		enum gw_result res = gwalk(&r, a, GW_FETCH, &gpa, f);
		if (res != GW_OK)
			return res;
		void *p = gpa >= BIOS_AREA_START && gpa + c <= BIOS_AREA_END ? gw_map_rom(gpa, c) : gw_map(gpa, c);
		if (!p)
			return GW_NOT_RAM;
		memcpy(buf + *got, p, c);
		*got += c;
	}
	return GW_OK;
}
