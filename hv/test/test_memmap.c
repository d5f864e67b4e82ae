#include "test.h"
#include "mm/memmap.h"
#include <string.h>

static uint64_t memmap_ram_bytes(const struct memmap *m)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < m->n; i++)
		if (m->e[i].type == E820_RAM)
			t += m->e[i].len;
	return t;
}

/* The map SeaBIOS gives a 512 MiB QEMU pc machine. */
static void qemu_map(struct memmap *m)
{
	memset(m, 0, sizeof(*m));
	memmap_add(m, 0, 0x9FC00, E820_RAM);
	memmap_add(m, 0x9FC00, 0x400, E820_RESERVED);
	memmap_add(m, 0xF0000, 0x10000, E820_RESERVED);
	memmap_add(m, 0x100000, 0x1FEE0000, E820_RAM);
	memmap_add(m, 0x1FFE0000, 0x20000, E820_RESERVED);
	memmap_add(m, 0xFFFC0000, 0x40000, E820_RESERVED);
}

/* Every byte of RAM in `before` is RAM or reserved in `after`, and nothing new appears. */
static int covered(const struct memmap *before, const struct memmap *after)
{
	for (unsigned i = 0; i < before->n; i++) {
		const struct memmap_entry *e = &before->e[i];
		for (unsigned long long p = e->base; p < e->base + e->len; p += 0x400) {
			int hits = 0;
			for (unsigned j = 0; j < after->n; j++) {
				const struct memmap_entry *a = &after->e[j];
				if (a->base <= p && p < a->base + a->len) {
					hits++;
					if (e->type == E820_RAM && a->type != E820_RAM && a->type != E820_RESERVED)
						return 0;
					if (e->type != E820_RAM && a->type != e->type)
						return 0;
				}
			}
			if (hits != 1)
				return 0;
		}
	}
	return 1;
}

static void carve_middle(void)
{
	struct memmap m, orig;
	qemu_map(&m);
	orig = m;
	CHECK(memmap_carve(&m, 0x1EE00000, 0x1000000, E820_RESERVED));
	CHECK_EQ(m.n, orig.n + 2);
	CHECK(covered(&orig, &m));
	CHECK_EQ(memmap_ram_bytes(&orig) - memmap_ram_bytes(&m), 0x1000000);
	CHECK(!memmap_is_ram(&m, 0x1EE00000, 1));
	CHECK(!memmap_is_ram(&m, 0x1EDFF000, 0x2000));
	CHECK(memmap_is_ram(&m, 0x1FE00000, 0x1000));
	for (unsigned i = 1; i < m.n; i++)
		CHECK(m.e[i - 1].base + m.e[i - 1].len <= m.e[i].base);
}

static void carve_edges_and_non_ram(void)
{
	struct memmap m, orig;
	qemu_map(&m);
	orig = m;
	/* At the very start of an entry, at its very end, and over non-RAM (left alone). */
	CHECK(memmap_carve(&m, 0x100000, 0x1000, E820_RESERVED));
	CHECK(memmap_carve(&m, 0x1FFDF000, 0x1000, E820_RESERVED));
	CHECK(memmap_carve(&m, 0xF0000, 0x20000, E820_RESERVED));
	CHECK(covered(&orig, &m));
	CHECK_EQ(memmap_ram_bytes(&orig) - memmap_ram_bytes(&m),
	    0x1000 + 0x1000 + 0xF000); /* the last carve overlaps the first */
	/* The 2 KiB below the EBDA, as the BIOS stub takes it. */
	CHECK(memmap_carve(&m, 0x9F400, 0x800, E820_RESERVED));
	CHECK(!memmap_is_ram(&m, 0x9F400, 1));
	CHECK(memmap_is_ram(&m, 0x9F3FF, 1));
	CHECK(covered(&orig, &m));
}

static void carve_overflow_refused(void)
{
	struct memmap m;
	memset(&m, 0, sizeof(m));
	for (unsigned i = 0; i < MEMMAP_MAX; i++)
		CHECK(memmap_add(&m, (unsigned long long)i * 0x10000, 0x8000, E820_RAM));
	CHECK(!memmap_add(&m, 0x10000000, 1, E820_RAM));
	CHECK(!memmap_carve(&m, 0x1000, 0x1000, E820_RESERVED));
	CHECK(m.n <= MEMMAP_MAX);
}

static void find_top(void)
{
	struct memmap m;
	qemu_map(&m);
	uint64_t base = 0;
	CHECK(memmap_find_top(&m, 0x1000000, 0x200000, 1ull << 32, NULL, 0, &base));
	CHECK_EQ(base, 0x1EE00000); /* 0x1FFE0000 aligned down to 2 MiB, minus 16 MiB */
	struct range ex = { 0x1F000000, 0x1F001000 };
	CHECK(memmap_find_top(&m, 0x1000000, 0x200000, 1ull << 32, &ex, 1, &base));
	CHECK_EQ(base, 0x1E000000);
	CHECK(base + 0x1000000 <= ex.base);
	CHECK(!memmap_find_top(&m, 0x40000000, 0x200000, 1ull << 32, NULL, 0, &base));
	/* RAM only above 4 GiB does not count below the limit. */
	struct memmap hi;
	memset(&hi, 0, sizeof(hi));
	memmap_add(&hi, 0x100000000ull, 0x100000000ull, E820_RAM);
	CHECK(!memmap_find_top(&hi, 0x1000000, 0x200000, 1ull << 32, NULL, 0, &base));
}

static void is_ram_spans_adjacent_entries(void)
{
	struct memmap m;
	memset(&m, 0, sizeof(m));
	memmap_add(&m, 0x2000, 0x1000, E820_RAM);
	memmap_add(&m, 0x1000, 0x1000, E820_RAM);
	CHECK(memmap_is_ram(&m, 0x1800, 0x1000));
	CHECK(!memmap_is_ram(&m, 0x2800, 0x1000));
	CHECK(!memmap_is_ram(&m, 0x1000, 0));
	CHECK(!memmap_is_ram(&m, ~0ull - 10, 100)); /* wraps */
}

static void legacy_sizes(void)
{
	struct memmap m;
	qemu_map(&m);
	memmap_carve(&m, 0x1EE00000, 0x1000000, E820_RESERVED);
	uint16_t kb, blocks, ext;
	memmap_legacy_sizes(&m, &kb, &blocks, &ext);
	CHECK_EQ(kb, 15 * 1024);
	CHECK_EQ(blocks, (0x1EE00000 - 0x1000000) >> 16);
	CHECK_EQ(ext, 0xFFFF);
	/* A small machine: 8 MiB of RAM. */
	struct memmap s;
	memset(&s, 0, sizeof(s));
	memmap_add(&s, 0, 0x9FC00, E820_RAM);
	memmap_add(&s, 0x100000, 0x700000, E820_RAM);
	memmap_legacy_sizes(&s, &kb, &blocks, &ext);
	CHECK_EQ(kb, 7 * 1024);
	CHECK_EQ(blocks, 0);
	CHECK_EQ(ext, 7 * 1024);
}

TESTS(memmap_tests) = {
	{ "memmap: carve in the middle of RAM", carve_middle },
	{ "memmap: carve at edges and over non-RAM", carve_edges_and_non_ram },
	{ "memmap: a full map is refused, not overrun", carve_overflow_refused },
	{ "memmap: find the top block", find_top },
	{ "memmap: is_ram across adjacent entries", is_ram_spans_adjacent_entries },
	{ "memmap: E801 and 88h sizes", legacy_sizes },
	{ NULL, NULL },
};
