/* The Linux boot protocol loader (guest/linux.c) and where a handed-over record may lie. */
#include "test.h"
#include "guest/linux.h"
#include "handoff/policy.h"
#include <stdlib.h>
#include <string.h>

static void put(uint8_t *p, unsigned off, unsigned size, uint64_t v)
{
	for (unsigned i = 0; i < size; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(const uint8_t *p, unsigned off, unsigned size)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)p[off + i] << (8 * i);
	return v;
}

/* A bzImage header as Debian's 6.1 kernel has it: 27 setup sectors, protocol 2.15. */
static uint8_t *bzimage(size_t len)
{
	uint8_t *img = calloc(1, len);
	put(img, LX_SETUP_SECTS, 1, 27);
	put(img, LX_BOOT_FLAG, 2, 0xAA55);
	put(img, LX_JUMP, 2, 0x6AEB); /* jmp short: the header ends at 0x26C */
	put(img, LX_HEADER, 4, LX_HDRS_MAGIC);
	put(img, LX_VERSION, 2, 0x020F);
	put(img, LX_LOADFLAGS, 1, LX_LOADED_HIGH);
	put(img, LX_INITRD_ADDR_MAX, 4, 0x7FFFFFFF);
	put(img, LX_KERNEL_ALIGNMENT, 4, 0x200000);
	put(img, LX_RELOCATABLE, 1, 1);
	put(img, LX_CMDLINE_SIZE, 4, 2047);
	put(img, 0x258, 8, 0x1000000); /* pref_address */
	put(img, LX_INIT_SIZE, 4, 0x2000000);
	put(img, 0x268, 4, 0x12345678); /* kernel_info_offset: last header field */
	return img;
}

static void parse_debian_like(void)
{
	size_t len = 28 * 512 + 100000;
	uint8_t *img = bzimage(len);
	struct linux_image li;
	CHECK(linux_is_bzimage(img, len));
	CHECK(linux_parse(img, len, &li) == NULL);
	CHECK_EQ(li.setup_bytes, 28 * 512);
	CHECK_EQ(li.code_bytes, 100000);
	CHECK_EQ(li.init_size, 0x2000000);
	CHECK_EQ(li.align, 0x200000);
	CHECK_EQ(li.initrd_max, 0x80000000ull);
	CHECK_EQ(li.cmdline_max, 2047);
	put(img, LX_SETUP_SECTS, 1, 0); /* 0 means 4 */
	CHECK(linux_parse(img, len, &li) == NULL);
	CHECK_EQ(li.setup_bytes, 5 * 512);
	free(img);
}

static void parse_refuses(void)
{
	size_t len = 28 * 512 + 4096;
	struct linux_image li;
	struct {
		unsigned off, size;
		uint64_t val;
	} bad[] = {
		{ LX_HEADER, 4, 0x53726449 },                                 /* not HdrS */
		{ LX_BOOT_FLAG, 2, 0 }, { LX_VERSION, 2, 0x0209 },            /* too old */
		{ LX_LOADFLAGS, 1, 0 },                                       /* zImage */
		{ LX_RELOCATABLE, 1, 0 }, { LX_KERNEL_ALIGNMENT, 4, 0x3000 }, /* not a power of two */
		{ LX_KERNEL_ALIGNMENT, 4, 0x800 },                            /* under a page */
		{ LX_INIT_SIZE, 4, 4000 },                                    /* smaller than the code */
		{ LX_JUMP + 1, 1, 0x90 },                                     /* header past boot_params' room */
		{ LX_SETUP_SECTS, 1, 200 },                                   /* setup past the end of the file */
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *img = bzimage(len);
		put(img, bad[i].off, bad[i].size, bad[i].val);
		CHECK(linux_parse(img, len, &li) != NULL);
		free(img);
	}
	uint8_t *img = bzimage(len);
	CHECK(linux_parse(img, 0x200, &li) != NULL); /* truncated */
	CHECK(!linux_is_bzimage(img, 0x263));
	free(img);
}

static void zero_page(void)
{
	size_t len = 28 * 512 + 8192;
	uint8_t *img = bzimage(len), zp[LX_ZERO_PAGE_SIZE];
	struct linux_image li;
	CHECK(linux_parse(img, len, &li) == NULL);
	struct memmap m = { 0 };
	memmap_add(&m, 0, 0x9F000, E820_RAM);
	memmap_add(&m, 0x100000, 0x1EF00000, E820_RAM);
	memmap_add(&m, 0x1F000000, 0x1000000, E820_RESERVED); /* Parapet */
	memmap_add(&m, 0x100000000ull, 0x40000000, E820_RAM);
	memset(zp, 0xCC, sizeof(zp));
	CHECK(linux_zero_page(zp, img, &li, &m, 0x1C000000, 0x11000, 0x2000000, 0x123456) == NULL);
	CHECK_EQ(get(zp, LX_HEADER, 4), LX_HDRS_MAGIC); /* the header came along */
	CHECK_EQ(get(zp, 0x268, 4), 0x12345678);
	CHECK_EQ(get(zp, 0x26C, 4), 0); /* and nothing after it */
	CHECK_EQ(get(zp, 0, 8), 0);     /* the rest is zero */
	CHECK_EQ(get(zp, LX_TYPE_OF_LOADER, 1), 0xFF);
	CHECK_EQ(get(zp, LX_CODE32_START, 4), 0x1C000000);
	CHECK_EQ(get(zp, LX_RAMDISK_IMAGE, 4), 0x2000000);
	CHECK_EQ(get(zp, LX_RAMDISK_SIZE, 4), 0x123456);
	CHECK_EQ(get(zp, LX_CMD_LINE_PTR, 4), 0x11000);
	CHECK_EQ(get(zp, LX_E820_ENTRIES, 1), 4);
	CHECK_EQ(get(zp, LX_E820_TABLE + 20 * 3, 8), 0x100000000ull);
	CHECK_EQ(get(zp, LX_E820_TABLE + 20 * 3 + 8, 8), 0x40000000);
	CHECK_EQ(get(zp, LX_E820_TABLE + 20 * 2 + 16, 4), E820_RESERVED);
	/* Refusals: misaligned load, initrd above initrd_addr_max, a kernel reaching past 4 GiB. */
	CHECK(linux_zero_page(zp, img, &li, &m, 0x1C001000, 0x11000, 0x2000000, 0x1000) != NULL);
	CHECK(linux_zero_page(zp, img, &li, &m, 0x1C000000, 0x11000, 0x7FFFF000, 0x2000) != NULL);
	CHECK(linux_zero_page(zp, img, &li, &m, 0xFFE00000, 0x11000, 0x2000000, 0x1000) != NULL);
	free(img);
}

static void record_place(void)
{
	struct memmap m = { 0 };
	memmap_add(&m, 0, 0x9F000, E820_RAM);
	memmap_add(&m, 0x9F000, 0x1000, E820_RESERVED);
	memmap_add(&m, 0x100000, 0x1EF00000, E820_RAM);
	memmap_add(&m, 0x1F000000, 0x1000000, E820_RESERVED); /* Parapet */
	uint64_t hb = 0x1F000000, he = 0x20000000;
	bool bad_len;
	CHECK(policy_place_problem(&m, hb, he, 0x1001000, 4096, &bad_len) == NULL);
	CHECK(policy_place_problem(&m, hb, he, 0x1001000, 0, &bad_len) && bad_len);
	CHECK(policy_place_problem(&m, hb, he, 0x1001000, POLICY_MAX_SIZE + 1, &bad_len) && bad_len);
	CHECK(policy_place_problem(&m, hb, he, 0x1001000, POLICY_MAX_SIZE, &bad_len) == NULL);
	CHECK(policy_place_problem(&m, hb, he, hb - 100, 200, &bad_len) && !bad_len); /* into Parapet */
	CHECK(policy_place_problem(&m, hb, he, hb + 4096, 64, &bad_len) && !bad_len);
	CHECK(policy_place_problem(&m, hb, he, 0x9EF00, 512, &bad_len) && !bad_len);   /* into reserved */
	CHECK(policy_place_problem(&m, hb, he, 0x20000000, 64, &bad_len) && !bad_len); /* past RAM */
	CHECK(policy_place_problem(&m, hb, he, ~0ull - 10, 64, &bad_len) && !bad_len); /* wraps */
}

TESTS(linux_tests) = {
	{ "linux: a Debian-like bzImage parses", parse_debian_like },
	{ "linux: malformed images are refused", parse_refuses },
	{ "linux: zero page: header, loader fields, memory map", zero_page },
	{ "handoff: where a record may lie", record_place },
	{ 0, 0 },
};
