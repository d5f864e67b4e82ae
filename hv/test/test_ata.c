/* ATA command tracking and bus-master descriptor checking/shadowing. */
#include "test.h"
#include "drivers/ata/ata.h"
#include "drivers/ata/ata_cmd.h"
#include "drivers/ata/ata_prd.h"
#include "vmm/gmem.h"
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

static void test_classify(void)
{
	CHECK_EQ(ata_classify(ATA_CMD_READ_DMA, 0).kind, ATA_DMA_IN);
	CHECK(!ata_classify(ATA_CMD_READ_DMA, 0).lba48);
	CHECK_EQ(ata_classify(ATA_CMD_WRITE_DMA_EXT, 0).kind, ATA_DMA_OUT);
	CHECK(ata_classify(ATA_CMD_WRITE_DMA_EXT, 0).lba48);
	CHECK_EQ(ata_classify(ATA_CMD_READ_MULTIPLE_EXT, 0).kind, ATA_PIO_IN);
	CHECK_EQ(ata_classify(ATA_CMD_WRITE_SECTORS, 0).kind, ATA_PIO_OUT);
	CHECK_EQ(ata_classify(ATA_CMD_IDENTIFY, 0).kind, ATA_PIO_IN_INFO);
	CHECK_EQ(ata_classify(ATA_CMD_FLUSH_CACHE_EXT, 0).kind, ATA_NONDATA);
	CHECK_EQ(ata_classify(ATA_CMD_SMART, SMART_READ_DATA).kind, ATA_PIO_IN_INFO);
	CHECK_EQ(ata_classify(ATA_CMD_SMART, 0xD6).kind, ATA_REFUSE); /* SMART WRITE LOG */
	/* Dangerous or unknown: security, microcode, max address, trusted, vendor, DSM, packet. */
	static const u8 refused[] = { 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0x92, 0x93, 0xF9, 0x37, 0x5C, 0x5D, 0x5E,
		0x5F, 0x80, 0x8F, 0xFF, 0x06, 0xA0, 0x00, 0x47, 0x57 };
	for (unsigned i = 0; i < sizeof(refused); i++)
		CHECK_EQ(ata_classify(refused[i], 0).kind, ATA_REFUSE);
}

static void test_taskfile(void)
{
	struct ata_taskfile tf = { 0 };
	u64 lba;
	u32 n;
	ata_tf_write(&tf, ATA_REG_DEVICE, 0xE5); /* LBA, device 0, LBA 27:24 = 5 */
	ata_tf_write(&tf, ATA_REG_COUNT, 0);
	ata_tf_write(&tf, ATA_REG_LBA_LOW, 0x11);
	ata_tf_write(&tf, ATA_REG_LBA_MID, 0x22);
	ata_tf_write(&tf, ATA_REG_LBA_HIGH, 0x33);
	CHECK(ata_tf_range(&tf, false, &lba, &n));
	CHECK_EQ(lba, 0x5332211);
	CHECK_EQ(n, 256); /* 0 means 256 */

	/* 48-bit: high bytes written first, then low; each write pushes the old value to HOB. */
	ata_tf_write(&tf, ATA_REG_COUNT, 0x01);
	ata_tf_write(&tf, ATA_REG_LBA_LOW, 0x44);
	ata_tf_write(&tf, ATA_REG_LBA_MID, 0x55);
	ata_tf_write(&tf, ATA_REG_LBA_HIGH, 0x66);
	ata_tf_write(&tf, ATA_REG_COUNT, 0x02);
	ata_tf_write(&tf, ATA_REG_LBA_LOW, 0x77);
	ata_tf_write(&tf, ATA_REG_LBA_MID, 0x88);
	ata_tf_write(&tf, ATA_REG_LBA_HIGH, 0x99);
	ata_tf_write(&tf, ATA_REG_DEVICE, 0x40);
	CHECK(ata_tf_range(&tf, true, &lba, &n));
	CHECK_EQ(lba, 0x665544998877ull);
	CHECK_EQ(n, 0x102);
	ata_tf_write(&tf, ATA_REG_COUNT, 0);
	ata_tf_write(&tf, ATA_REG_COUNT, 0);
	CHECK(ata_tf_range(&tf, true, &lba, &n));
	CHECK_EQ(n, 65536); /* 0 means 65536 */

	ata_tf_write(&tf, ATA_REG_DEVICE, 0xA0); /* CHS */
	CHECK(!ata_tf_range(&tf, false, &lba, &n));
}

/* Guest RAM for the descriptor tests: 256 KiB mapped at a fixed low host address, because
 * descriptors hold 32-bit physical addresses and guest-physical equals host here. */
static u8 *ram;
static struct memmap map;
#define RAM_SIZE (256 * 1024)
#define GPA(off) ((u64)(uintptr_t)(ram + (off)))

static void ram_setup(void)
{
	if (!ram) {
		void *p = mmap((void *)0x40000000, RAM_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED) {
			perror("mmap guest RAM at 1 GiB");
			exit(2);
		}
		ram = p;
	}
	memset(ram, 0, RAM_SIZE);
	memset(&map, 0, sizeof(map));
	memmap_add(&map, GPA(0), RAM_SIZE, E820_RAM);
	gmem_init(&map);
}

static void put_prd(u64 table_off, unsigned i, u64 addr, u32 len, bool eot)
{
	struct prd e = { (u32)addr, (len & 0xFFFF) | (eot ? PRD_EOT : 0) };
	memcpy(ram + table_off + 8 * i, &e, 8);
}

static struct prd_list list;

static void test_prd_fetch(void)
{
	ram_setup();
	put_prd(0, 0, GPA(0x10000), 4096, false);
	put_prd(0, 1, GPA(0x20000), 0, true); /* 0 = 64 KiB */
	CHECK(prd_fetch(GPA(0), &list) == NULL);
	CHECK_EQ(list.n, 2);
	CHECK_EQ(list.total, 4096 + 65536);

	CHECK(prd_fetch(GPA(2), &list) != NULL); /* table not dword aligned */
	put_prd(0, 0, GPA(0x10001), 4096, true);
	CHECK(prd_fetch(GPA(0), &list) != NULL); /* odd buffer address */
	put_prd(0, 0, GPA(0x1F000), 8192, true);
	CHECK(prd_fetch(GPA(0), &list) != NULL); /* crosses 64 KiB */
	put_prd(0, 0, GPA(RAM_SIZE - 4096), 8192, true);
	CHECK(prd_fetch(GPA(0), &list) != NULL); /* runs past guest RAM */
	put_prd(0, 0, 0xFFFF0000u, 4096, true);
	CHECK(prd_fetch(GPA(0), &list) != NULL); /* not guest RAM (e.g. Parapet's) */
	CHECK(prd_fetch(0x1000, &list) != NULL); /* table itself not guest RAM */

	/* No end mark before the 64 KiB boundary. */
	for (unsigned i = 0; i < 8192; i++)
		put_prd(0x10000, i, GPA(0x30000), 512, false);
	CHECK(prd_fetch(GPA(0x10000), &list) != NULL);
	put_prd(0x10000, 8191, GPA(0x30000), 512, true);
	CHECK(prd_fetch(GPA(0x10000), &list) == NULL);
	CHECK_EQ(list.n, 8192);
}

static void test_prd_build_and_copy(void)
{
	static struct prd t[64];
	unsigned n = prd_build(t, 64, 0x12340000, 1024 * 1024);
	CHECK_EQ(n, 16);
	CHECK_EQ(t[0].addr, 0x12340000);
	CHECK_EQ(t[0].count_eot, 0); /* 64 KiB */
	CHECK_EQ(t[15].count_eot, PRD_EOT);
	n = prd_build(t, 64, 0x1234F000, 8192); /* split at the boundary */
	CHECK_EQ(n, 2);
	CHECK_EQ(t[0].count_eot, 4096);
	CHECK_EQ(t[1].addr, 0x12350000);
	CHECK_EQ(t[1].count_eot, 4096 | PRD_EOT);
	CHECK_EQ(prd_build(t, 1, 0x1234F000, 8192), 0); /* does not fit */

	ram_setup();
	/* Scatter 3 x 512 bytes over buffers of 100, 1000 and 500 bytes, from offset 50. */
	list.n = 3;
	list.e[0].addr = (u32)GPA(0x1000), list.e[0].len = 100;
	list.e[1].addr = (u32)GPA(0x2000), list.e[1].len = 1000;
	list.e[2].addr = (u32)GPA(0x3000), list.e[2].len = 500;
	list.total = 1600;
	u8 src[1536];
	for (unsigned i = 0; i < sizeof(src); i++)
		src[i] = (u8)(i + 1);
	CHECK(prd_copy(&list, 50, src, sizeof(src), true));
	CHECK_EQ(ram[0x1000 + 49], 0);
	CHECK_EQ(ram[0x1000 + 50], 1);
	CHECK_EQ(ram[0x2000], 51);
	CHECK_EQ(ram[0x3000], (u8)(1051));
	CHECK_EQ(ram[0x3000 + 485], (u8)1536);
	CHECK_EQ(ram[0x3000 + 486], 0);
	u8 back[1536];
	CHECK(prd_copy(&list, 50, back, sizeof(back), false));
	CHECK(memcmp(back, src, sizeof(src)) == 0);
	static u8 big[2048];
	CHECK(!prd_copy(&list, 50, big, 1600, false)); /* more than the list holds */

	struct prd emitted[3];
	prd_emit(&list, emitted);
	CHECK_EQ(emitted[1].count_eot, 1000);
	CHECK_EQ(emitted[2].count_eot, 500 | PRD_EOT);
}

TESTS(ata_tests) = {
	{ "ata: command classification (allow-list, dangerous refused)", test_classify },
	{ "ata: task file shadow, LBA28/LBA48/HOB, CHS refused", test_taskfile },
	{ "ata: guest PRD tables are checked entry by entry", test_prd_fetch },
	{ "ata: shadow PRD tables and scatter/gather", test_prd_build_and_copy },
	{ NULL, NULL },
};
