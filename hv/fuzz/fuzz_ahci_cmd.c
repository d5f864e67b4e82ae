/* libFuzzer: an AHCI command slot as the guest leaves it (header, table, PRDs in guest memory),
 * fetched and checked as ahci_cmd_fetch()/ahci_cmd_check() do at PxCI, on a protected drive and
 * on an unprotected one; then scatter/gather over what was accepted. */
#include "drivers/ahci/ahci_cmd.h"
#include "handoff/policy.h"
#include "vmm/gmem.h"
#include "core/log.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RAM_BASE 0x40000000ul
#define RAM_SIZE (192 * 1024)
#define GUEST_RAM (128 * 1024)

/* The fuzzer discards log lines. */
void log_sink_init(const struct log_config *cfg)
{
	(void)cfg;
}
void log_sink_write(const char *s, size_t n)
{
	(void)s, (void)n;
}

static struct memmap map;
static struct policy pol;
static struct ahci_cmd cmd;
static u8 buf[65536];

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static u8 *ram;
	static const struct storage_drive *sd;
	if (!ram) {
		ram = mmap((void *)RAM_BASE, RAM_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (ram == MAP_FAILED)
			abort();
		/* Guest RAM is the first 128 KiB; the last 64 KiB stand for Parapet's memory or MMIO. */
		memmap_add(&map, RAM_BASE, GUEST_RAM, E820_RAM);
		gmem_init(&map);
		pol.nkeys = 1;
		memset(pol.keys[0], 0x5A, 64);
		pol.ndrives = 1;
		pol.drives[0].default_action = POLICY_ENCRYPT;
		pol.drives[0].block_size = SECTOR_SIZE;
		pol.drives[0].nranges = 1;
		pol.nranges = 1;
		pol.ranges[0] = (struct policy_range){ .first_lba = 64, .count = 64, .action = POLICY_DENY };
		storage_init(&pol);
		struct storage_id id;
		memset(&id, 0, sizeof(id));
		id.block_size = SECTOR_SIZE;
		sd = storage_bind(&id);
	}
	if (size < 6)
		return 0;
	u32 clb;
	memcpy(&clb, data, 4);
	unsigned slot = data[4] % AHCI_SLOTS;
	u8 flags = data[5];
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + 6, size - 6 < GUEST_RAM ? size - 6 : GUEST_RAM);
	memset(ram + GUEST_RAM, 0xA5, RAM_SIZE - GUEST_RAM);

	if (ahci_cmd_fetch(RAM_BASE + (clb % RAM_SIZE), slot, &cmd) == NULL) {
		u64 total = 0;
		if (cmd.nbuf > AHCI_PRD_MAX)
			abort();
		for (unsigned i = 0; i < cmd.nbuf; i++) {
			u64 a = cmd.buf[i].addr, l = cmd.buf[i].len;
			if (a < RAM_BASE || a + l > RAM_BASE + GUEST_RAM || (a & 1) || (l & 1) || l == 0)
				abort();
			total += l;
		}
		if (total != cmd.total)
			abort();
		if (ahci_cmd_check(&cmd, (flags & 1) ? sd : NULL, (flags & 2) != 0) == NULL) {
			if (!(flags & 1) && cmd.kind != AHCI_DIRECT)
				abort();
			if (cmd.kind == AHCI_SECTORS) {
				if ((u64)cmd.count * 512 > cmd.total || !storage_allowed(sd, cmd.lba, cmd.count) ||
				    cmd.cfis[0] != 0x27)
					abort();
				u8 f[AHCI_CFIS_BYTES];
				memcpy(f, cmd.cfis, sizeof(f));
				ahci_cmd_set_range(&cmd, f, cmd.lba, cmd.count);
				if (memcmp(f, cmd.cfis, 16) != 0) /* the same range writes the same bytes */
					abort();
			}
			u64 len = cmd.total < sizeof(buf) ? cmd.total : sizeof(buf);
			ahci_cmd_copy(&cmd, 0, buf, len, false);
			ahci_cmd_copy(&cmd, 0, buf, len, true);
		}
	}
	for (unsigned i = GUEST_RAM; i < RAM_SIZE; i++)
		if (ram[i] != 0xA5)
			abort();
	return 0;
}
