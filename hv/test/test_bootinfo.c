#include "test.h"
#include "boot/bootinfo.h"
#include <stdlib.h>
#include <string.h>

/* A fake low memory: physical address p is buf + p. */
static unsigned char *mem;
static const void *ptr(uint64_t pa)
{
	return mem + pa;
}

static void put32(uint64_t pa, uint32_t v)
{
	memcpy(mem + pa, &v, 4);
}
static void put64(uint64_t pa, uint64_t v)
{
	memcpy(mem + pa, &v, 8);
}

static void reset(void)
{
	if (!mem)
		mem = malloc(0x10000);
	memset(mem, 0, 0x10000);
}

static void multiboot1(void)
{
	reset();
	/* info at 0x1000, cmdline at 0x2000, mmap at 0x3000 (2 entries), one module at 0x4000 */
	put32(0x1000, (1 << 2) | (1 << 3) | (1 << 6));
	put32(0x1000 + 16, 0x2000);
	strcpy((char *)mem + 0x2000, "parapet.elf log=com1");
	put32(0x1000 + 20, 1);
	put32(0x1000 + 24, 0x4000);
	put32(0x4000, 0x200000);
	put32(0x4004, 0x201000);
	put32(0x4008, 0x5000);
	strcpy((char *)mem + 0x5000, "policy.bin");
	put32(0x1000 + 44, 48);
	put32(0x1000 + 48, 0x3000);
	put32(0x3000, 20);
	put64(0x3004, 0x100000);
	put64(0x300C, 0x1000000);
	put32(0x3014, 1);
	put32(0x3018, 20);
	put64(0x301C, 0);
	put64(0x3024, 0x9FC00);
	put32(0x302C, 1);
	struct boot_info bi;
	CHECK(bootinfo_parse(MB1_BOOT_MAGIC, 0x1000, ptr, &bi) == NULL);
	CHECK(strcmp(bi.cmdline, "parapet.elf log=com1") == 0);
	CHECK_EQ(bi.map.n, 2);
	CHECK_EQ(bi.map.e[0].base, 0); /* sorted */
	CHECK_EQ(bi.map.e[1].len, 0x1000000);
	CHECK_EQ(bi.nmods, 1);
	CHECK_EQ(bi.mods[0].end, 0x201000);
	CHECK(strcmp(bi.mods[0].string, "policy.bin") == 0);
	/* A broken memory map entry size is refused. */
	put32(0x3018, 4);
	CHECK(bootinfo_parse(MB1_BOOT_MAGIC, 0x1000, ptr, &bi) != NULL);
	/* No memory map at all. */
	put32(0x1000, 1 << 2);
	CHECK(bootinfo_parse(MB1_BOOT_MAGIC, 0x1000, ptr, &bi) != NULL);
}

static uint64_t tag(uint64_t p, uint32_t type, uint32_t size)
{
	put32(p, type);
	put32(p + 4, size);
	return p + 8;
}

static void multiboot2(void)
{
	reset();
	uint64_t p = 0x1008, b;
	b = tag(p, 1, 8 + 13);
	strcpy((char *)mem + b, "log=e9 x=1  ");
	p += (8 + 13 + 7) & ~7u;
	b = tag(p, 6, 16 + 2 * 24);
	put32(b, 24);
	put32(b + 4, 0);
	put64(b + 8, 0x100000);
	put64(b + 16, 0x2000000);
	put32(b + 24, 1);
	put64(b + 32, 0);
	put64(b + 40, 0x9F000);
	put32(b + 48, 1);
	p += 16 + 2 * 24;
	b = tag(p, 3, 8 + 8 + 4);
	put32(b, 0x300000);
	put32(b + 4, 0x300800);
	strcpy((char *)mem + b + 8, "mod");
	p += (20 + 7) & ~7u;
	tag(p, 0, 8);
	p += 8;
	put32(0x1000, (uint32_t)(p - 0x1000));
	struct boot_info bi;
	CHECK(bootinfo_parse(MB2_BOOT_MAGIC, 0x1000, ptr, &bi) == NULL);
	CHECK(strcmp(bi.cmdline, "log=e9 x=1  ") == 0);
	CHECK_EQ(bi.map.n, 2);
	CHECK_EQ(bi.map.e[1].base, 0x100000);
	CHECK_EQ(bi.nmods, 1);
	CHECK(strcmp(bi.mods[0].string, "mod") == 0);
	CHECK_EQ(bi.mbi.end, p);
	/* A tag that runs past the total size is refused. */
	put32(0x1000 + 8 + 4, 0x5000);
	CHECK(bootinfo_parse(MB2_BOOT_MAGIC, 0x1000, ptr, &bi) != NULL);
	/* An implausible total size is refused. */
	put32(0x1000, 0x7FFFFFFF);
	CHECK(bootinfo_parse(MB2_BOOT_MAGIC, 0x1000, ptr, &bi) != NULL);
	CHECK(bootinfo_parse(0x12345678, 0x1000, ptr, &bi) != NULL);
}

TESTS(bootinfo_tests) = {
	{ "bootinfo: multiboot 1", multiboot1 },
	{ "bootinfo: multiboot 2", multiboot2 },
	{ NULL, NULL },
};
