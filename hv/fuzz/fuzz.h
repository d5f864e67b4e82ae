/* Shared by the libFuzzer targets in fuzz/: the input read as little-endian fields, and a fake
 * guest memory behind the page walker (guest-physical 0 .. FAKE_MEM_SIZE is RAM, the rest is
 * not). */
#ifndef PARAPET_FUZZ_FUZZ_H
#define PARAPET_FUZZ_FUZZ_H

#include "vmm/gwalk.h"
#include "vmm/vcpu.h"
#include "core/x86.h"
#include <stdlib.h>
#include <string.h>

/* The next `bytes` bytes of the input (fewer at its end) as a little-endian number. */
static inline u64 take(const u8 **p, size_t *n, unsigned bytes)
{
	u64 v = 0;
	for (unsigned i = 0; i < bytes && *n; i++, (*p)++, (*n)--)
		v |= (u64) * *p << (8 * i);
	return v;
}

#define FAKE_MEM_SIZE (64 * 1024)

/* What page walks and segment checks depend on, from the input: ctl (returned) bits 0-3 CR0.PE,
 * CR0.PG, CR4.PAE, EFER.LMA, bits 6-7 the CPL, bit 12 CR4.LA57; CR3 in the fake memory; each
 * segment's base (in 4 KiB), limit, attributes and selector. The rest of *v is zero. */
static inline u64 take_vcpu(const u8 **p, size_t *n, struct vcpu *v)
{
	memset(v, 0, sizeof(*v));
	u64 ctl = take(p, n, 4);
	v->cr0 = (ctl & 1 ? CR0_PE : 0) | (ctl & 2 ? CR0_PG : 0);
	v->cr4 = (ctl & 4 ? CR4_PAE : 0) | (ctl & (1 << 12) ? 1ull << 12 : 0);
	v->efer = ctl & 8 ? EFER_LMA | EFER_LME : 0;
	v->cpl = (u8)((ctl >> 6) & 3);
	v->cr3 = take(p, n, 3) & (FAKE_MEM_SIZE - 1);
	for (int s = 0; s < SEG_NR; s++) {
		v->seg[s].base = take(p, n, 1) << 12;
		v->seg[s].limit = (u32)take(p, n, 4);
		v->seg[s].attr = (u16)take(p, n, 2);
		v->seg[s].sel = (u16)take(p, n, 2);
	}
	return ctl;
}

static u8 *fake_mem;

static inline void *fake_map(u64 gpa, u64 len)
{
	if (len == 0 || gpa >= FAKE_MEM_SIZE || len > FAKE_MEM_SIZE - gpa)
		return NULL;
	return fake_mem + gpa;
}

/* Fills the fake memory with the rest of the input, zeros after it; the first call allocates it
 * and points gw_map and gw_map_rom at it. */
static inline void fake_mem_load(const u8 *p, size_t n)
{
	if (!fake_mem) {
		fake_mem = malloc(FAKE_MEM_SIZE);
		gw_map = fake_map;
		gw_map_rom = fake_map;
	}
	memset(fake_mem, 0, FAKE_MEM_SIZE);
	memcpy(fake_mem, p, n < FAKE_MEM_SIZE ? n : FAKE_MEM_SIZE);
}

#endif
