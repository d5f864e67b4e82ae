/* Shared by the libFuzzer targets in fuzz/: the input read as little-endian fields, and a fake
 * guest memory behind the page walker (guest-physical 0 .. FAKE_MEM_SIZE is RAM, the rest is
 * not). */
#ifndef PARAPET_FUZZ_FUZZ_H
#define PARAPET_FUZZ_FUZZ_H

#include "vmm/gwalk.h"
#include <stdlib.h>
#include <string.h>

/* The next `bytes` bytes of the input (fewer at its end) as a little-endian number. */
static inline u64 take(const u8 **p, size_t *n, unsigned bytes)
{
	u64 v = 0;
	for (unsigned i = 0; i < bytes && *n; i++, (*p)++, (*n)--)
		v |= (u64)**p << (8 * i);
	return v;
}

#define FAKE_MEM_SIZE (64 * 1024)

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
