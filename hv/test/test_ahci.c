/*
 * The AHCI driver's port logic against a model of an HBA with two ports (port 0: a disk the
 * policy protects; port 1: a disk it does not name). The model runs each issued slot when the
 * test says (dev_run), from the command list the device was given, and refuses to DMA anywhere
 * but guest RAM and Parapet's shadow memory. Guest memory and Parapet's memory are two fixed
 * low mappings (descriptors hold physical addresses; guest-physical equals host here).
 */
#include "test.h"
#include "drivers/ahci/ahci_port.h"
#include "drivers/ata/ata.h"
#include "handoff/policy.h"
#include "crypto/xts.h"
#include "vmm/gmem.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define GRAM_BASE 0x20000000ull
#define GRAM_SIZE (4u << 20)
#define HV_BASE 0x28000000ull
#define HV_SIZE (8u << 20)
#define DISK_SECTORS 8192

static u8 *gram, *hvm;
static struct memmap map;

/* ---- The HBA model ---- */
struct dev_port {
	u32 clb, fb, is, ie, cmd, tfd, sact, ci, serr;
	u8 disk[DISK_SECTORS * SECTOR_SIZE];
	unsigned ops; /* commands executed */
	u8 last_op;   /* the last opcode executed */
	bool bad_dma; /* a PRD, list or table outside guest RAM and Parapet's memory */
};
static struct dev_port dp[2];
static u32 dev_ghc = AHCI_GHC_AE, dev_is;

static void *dma(struct dev_port *d, u64 a, u64 len)
{
	if ((a >= GRAM_BASE && a + len <= GRAM_BASE + GRAM_SIZE) || (a >= HV_BASE && a + len <= HV_BASE + HV_SIZE))
		return (void *)(uintptr_t)a;
	d->bad_dma = true;
	return NULL;
}

static u32 dev_rd(void *ctx, u32 off)
{
	(void)ctx;
	if (off == AHCI_CAP)
		return AHCI_CAP_S64A | AHCI_CAP_SNCQ | AHCI_CAP_SPM | (31u << 8) | 1;
	if (off == AHCI_GHC)
		return dev_ghc;
	if (off == AHCI_IS)
		return dev_is;
	if (off == AHCI_PI)
		return 3;
	unsigned p = (off - 0x100) / 0x80;
	if (off < 0x100 || p > 1)
		return 0;
	struct dev_port *d = &dp[p];
	switch ((off - 0x100) % 0x80) {
	case PX_CLB:
		return d->clb;
	case PX_FB:
		return d->fb;
	case PX_IS:
		return d->is;
	case PX_IE:
		return d->ie;
	case PX_CMD:
		return d->cmd;
	case PX_TFD:
		return d->tfd;
	case PX_SIG:
		return PX_SIG_ATA;
	case PX_SSTS:
		return 0x123;
	case PX_SERR:
		return d->serr;
	case PX_SACT:
		return d->sact;
	case PX_CI:
		return d->ci;
	}
	return 0;
}

static void dev_wr(void *ctx, u32 off, u32 v)
{
	(void)ctx;
	if (off == AHCI_GHC) {
		if (v & AHCI_GHC_HR)
			for (unsigned i = 0; i < 2; i++)
				dp[i].cmd = dp[i].is = dp[i].ci = dp[i].sact = dp[i].ie = 0; /* CLB/FB kept */
		dev_ghc = (v & ~AHCI_GHC_HR) | AHCI_GHC_AE;
		return;
	}
	if (off == AHCI_IS) {
		dev_is &= ~v;
		return;
	}
	unsigned p = (off - 0x100) / 0x80;
	if (off < 0x100 || p > 1)
		return;
	struct dev_port *d = &dp[p];
	switch ((off - 0x100) % 0x80) {
	case PX_CLB:
		d->clb = v;
		break;
	case PX_FB:
		d->fb = v;
		break;
	case PX_IS:
		d->is &= ~v;
		break;
	case PX_IE:
		d->ie = v;
		break;
	case PX_CMD:
		if ((d->cmd & PX_CMD_ST) && !(v & PX_CMD_ST))
			d->ci = d->sact = 0;
		d->cmd = (v & (PX_CMD_ST | PX_CMD_FRE)) | (v & PX_CMD_ST ? PX_CMD_CR : 0) |
			 (v & PX_CMD_FRE ? PX_CMD_FR : 0);
		break;
	case PX_SACT:
		d->sact |= v;
		break;
	case PX_CI:
		if (d->cmd & PX_CMD_ST)
			d->ci |= v;
		break;
	case PX_SERR:
		d->serr &= ~v;
		break;
	}
}

/* Execute every issued slot of port p, as the HBA would. */
static void dev_run(unsigned p)
{
	struct dev_port *d = &dp[p];
	for (unsigned s = 0; s < 32; s++) {
		if (!(d->ci >> s & 1) || (d->is & PX_IS_TFES))
			continue;
		struct ahci_cmd_header *h = dma(d, d->clb + s * 32u, 32);
		if (!h)
			return;
		u8 *t = dma(d, h->ctba, 0x80 + 16u * AHCI_HDR_PRDTL(h->dw0));
		if (!t)
			return;
		u8 op = t[FIS_COMMAND];
		bool ncq = op == ATA_CMD_READ_FPDMA || op == ATA_CMD_WRITE_FPDMA;
		u64 lba = t[4] | (u64)t[5] << 8 | (u64)t[6] << 16 | (u64)t[8] << 24;
		u32 n = ncq ? t[3] : t[12];
		d->ops++;
		d->last_op = op;
		u64 moved = 0;
		if (op == ATA_CMD_NOP || lba + n > DISK_SECTORS) {
			d->tfd = 0x0441; /* ERR with ABRT */
			d->is |= PX_IS_TFES;
			continue;
		}
		u8 *disk = d->disk + lba * SECTOR_SIZE;
		struct ahci_prd_entry *e = (struct ahci_prd_entry *)(t + 0x80);
		u8 ident[512] = { 0 };
		memcpy(ident + 20, "SREIAL", 6);
		bool io = op == ATA_CMD_READ_DMA_EXT || op == ATA_CMD_WRITE_DMA_EXT || ncq || op == ATA_CMD_IDENTIFY;
		u64 want = op == ATA_CMD_IDENTIFY ? 512 : (u64)n * SECTOR_SIZE;
		bool to_mem = op != ATA_CMD_WRITE_DMA_EXT && op != ATA_CMD_WRITE_FPDMA;
		for (unsigned i = 0; io && i < AHCI_HDR_PRDTL(h->dw0) && moved < want; i++) {
			u32 len = (e[i].dbc_i & AHCI_PRD_DBC_MASK) + 1;
			if (len > want - moved)
				len = (u32)(want - moved);
			u8 *m = dma(d, (u64)e[i].dbau << 32 | e[i].dba, len);
			if (!m)
				return;
			u8 *src = op == ATA_CMD_IDENTIFY ? ident + moved : disk + moved;
			if (to_mem)
				memcpy(m, src, len);
			else
				memcpy(disk + moved, m, len);
			moved += len;
		}
		h->prdbc = (u32)moved;
		d->tfd = 0x50;
		u8 *fis = dma(d, d->fb, 256);
		if (fis)
			fis[AHCI_RFIS_D2H + 2] = 0x50;
		d->ci &= ~(1u << s);
		if (ncq) {
			d->sact &= ~(1u << s);
			d->is |= PX_IS_SDBS;
		} else {
			d->is |= PX_IS_DHRS;
		}
		dev_is |= 1u << p;
	}
}

/* ---- The guest's side ---- */
static struct ahci_hba hba;
static struct ahci_slot slots[2][AHCI_SLOTS];
static struct policy pol;

#define G_CLB(p) (0x1000u + 0x1000u * (p)) /* guest command lists (offsets into gram) */
#define G_FB(p) (0x3000u + 0x100u * (p))
#define G_CT(p, s) (0x10000u + 0x8000u * (p) + 0x100u * (s))
#define G_BUF 0x100000u /* data buffers */

static u64 gpa(u64 off)
{
	return GRAM_BASE + off;
}

static u32 reg_rd(u32 off)
{
	u64 v = 0;
	CHECK(ahci_access(&hba, off, 4, false, &v));
	return (u32)v;
}

static void reg_wr(u32 off, u32 v)
{
	u64 x = v;
	CHECK(ahci_access(&hba, off, 4, true, &x));
}

#define PREG(p, r) (AHCI_PORT_BASE(p) + (r))

/* Build slot s of port p: FIS for op at lba/count, PRDs over `len` bytes at G_BUF + boff in
 * `nprd` equal pieces (or at `addr` when non-zero). */
static void build(unsigned p, unsigned s, u8 op, u64 lba, u32 count, bool write, u64 boff, u32 len, unsigned nprd,
    u64 addr)
{
	struct ahci_cmd_header *h = (void *)(gram + G_CLB(p) + 32 * s);
	memset(h, 0, sizeof(*h));
	h->dw0 = 5 | (write ? AHCI_HDR_W : 0) | (u32)nprd << 16;
	h->ctba = (u32)gpa(G_CT(p, s));
	u8 *t = gram + G_CT(p, s);
	memset(t, 0, 0x100);
	t[0] = FIS_TYPE_H2D;
	t[1] = FIS_H2D_C;
	t[2] = op;
	t[7] = ATA_DEV_LBA;
	t[4] = (u8)lba, t[5] = (u8)(lba >> 8), t[6] = (u8)(lba >> 16), t[8] = (u8)(lba >> 24);
	bool ncq = op == ATA_CMD_READ_FPDMA || op == ATA_CMD_WRITE_FPDMA;
	t[ncq ? 3 : 12] = (u8)count;
	t[ncq ? 11 : 13] = (u8)(count >> 8);
	if (ncq)
		t[12] = (u8)(s << 3);
	struct ahci_prd_entry *e = (void *)(t + 0x80);
	for (unsigned i = 0; i < nprd; i++) {
		u64 a = addr ? addr : gpa(G_BUF + boff + (u64)i * (len / nprd));
		e[i] = (struct ahci_prd_entry){ (u32)a, (u32)(a >> 32), 0, len / nprd - 1 };
	}
}

/* Run the device and read the port's registers, as an interrupt handler does, until slots
 * `mask` completed or the port reports an error; returns the PxIS the guest saw. */
static u32 complete(unsigned p, u32 mask, unsigned *rounds)
{
	u32 seen = 0;
	for (*rounds = 0; *rounds < 64; ++*rounds) {
		dev_run(p);
		(void)reg_rd(AHCI_IS);
		u32 is = reg_rd(PREG(p, PX_IS));
		reg_wr(PREG(p, PX_IS), is);
		seen |= is;
		if (is & PX_IS_TFES)
			break;
		if (!(reg_rd(PREG(p, PX_CI)) & mask) && !(reg_rd(PREG(p, PX_SACT)) & mask))
			break;
	}
	return seen;
}

static void setup(void)
{
	if (!gram) {
		gram = mmap((void *)(uintptr_t)GRAM_BASE, GRAM_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		hvm = mmap((void *)(uintptr_t)HV_BASE, HV_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (gram == MAP_FAILED || hvm == MAP_FAILED) {
			perror("mmap test memory");
			exit(2);
		}
	}
	memset(gram, 0, GRAM_SIZE);
	memset(hvm, 0, HV_SIZE);
	memset(&map, 0, sizeof(map));
	memmap_add(&map, GRAM_BASE, GRAM_SIZE, E820_RAM);
	gmem_init(&map);
	memset(dp, 0, sizeof(dp));
	dev_ghc = AHCI_GHC_AE;
	dev_is = 0;

	/* One key; the protected drive encrypted whole but for a denied range at 5000-5099. */
	memset(&pol, 0, sizeof(pol));
	pol.nkeys = 1;
	for (unsigned i = 0; i < 64; i++)
		pol.keys[0][i] = (u8)(i * 3 + 1);
	pol.ndrives = 1;
	pol.drives[0].default_action = POLICY_ENCRYPT;
	pol.drives[0].block_size = SECTOR_SIZE;
	pol.drives[0].nranges = 1;
	pol.nranges = 1;
	pol.ranges[0] = (struct policy_range){ .first_lba = 5000, .count = 100, .action = POLICY_DENY };
	storage_init(&pol);

	/* The guest (firmware) had both ports running on its own lists. */
	for (unsigned p = 0; p < 2; p++) {
		dp[p].clb = (u32)gpa(G_CLB(p));
		dp[p].fb = (u32)gpa(G_FB(p));
		dp[p].cmd = PX_CMD_ST | PX_CMD_FRE | PX_CMD_CR | PX_CMD_FR;
	}
	memset(&hba, 0, sizeof(hba));
	memset(slots, 0, sizeof(slots));
	hba.hw = (struct ahci_hw){ dev_rd, dev_wr, NULL };
	for (unsigned p = 0; p < 2; p++) {
		u64 mem = HV_BASE + (u64)p * AHCI_PORT_TABLE_BYTES;
		CHECK(ahci_port_take(&hba, p, hvm + (mem - HV_BASE), mem, slots[p]));
	}
	u64 bounce = HV_BASE + 2 * AHCI_PORT_TABLE_BYTES;
	hba.port[0].bounce = hvm + (bounce - HV_BASE);
	hba.port[0].bounce_pa = bounce;
	struct storage_id id;
	memset(&id, 0, sizeof(id));
	id.block_size = SECTOR_SIZE;
	hba.port[0].sd = storage_bind(&id);
	CHECK(hba.port[0].sd != NULL);
}

static void fill(u64 off, u64 len, u8 seed)
{
	for (u64 i = 0; i < len; i++)
		gram[G_BUF + off + i] = (u8)(seed + i * 13 + (i >> 9));
}

static void test_take(void)
{
	setup();
	/* The device runs on Parapet's lists; the guest reads its own values back. */
	CHECK_EQ(dp[0].clb, HV_BASE);
	CHECK_EQ(dp[0].fb, HV_BASE + AHCI_LIST_FIS);
	CHECK_EQ(reg_rd(PREG(0, PX_CLB)), gpa(G_CLB(0)));
	CHECK_EQ(reg_rd(PREG(0, PX_FB)), gpa(G_FB(0)));
	CHECK(dp[0].cmd & PX_CMD_ST);
	/* Port multipliers and FIS-based switching are not offered. */
	CHECK(!(reg_rd(AHCI_CAP) & AHCI_CAP_SPM));
	/* A guest write of PxCLB changes its view only. */
	reg_wr(PREG(0, PX_CMD), PX_CMD_FRE);
	reg_wr(PREG(0, PX_CLB), (u32)gpa(0x2000));
	CHECK_EQ(reg_rd(PREG(0, PX_CLB)), gpa(0x2000));
	CHECK_EQ(dp[0].clb, HV_BASE);
	/* Registers are dwords. */
	u64 v = 0;
	CHECK(!ahci_access(&hba, PREG(0, PX_CI), 2, true, &v));
}

static void test_encrypted_round_trip(void)
{
	setup();
	/* 300 sectors: three chunks (128 + 128 + 44), PRDs of 3 x 51200 bytes. */
	u32 n = 300, bytes = n * SECTOR_SIZE;
	fill(0, bytes, 7);
	build(0, 3, ATA_CMD_WRITE_DMA_EXT, 100, n, true, 0, bytes, 3, 0);
	reg_wr(PREG(0, PX_CI), 1u << 3);
	CHECK_EQ(reg_rd(PREG(0, PX_CI)), 1u << 3);
	unsigned rounds;
	u32 is = complete(0, 1u << 3, &rounds);
	CHECK_EQ(rounds, 2); /* two chunk completions hidden, the third the guest's */
	CHECK(is & PX_IS_DHRS);
	CHECK(!(is & PX_IS_TFES));
	CHECK_EQ(reg_rd(PREG(0, PX_CI)), 0);
	CHECK_EQ(((struct ahci_cmd_header *)(gram + G_CLB(0)))[3].prdbc, bytes);
	CHECK_EQ(dp[0].ops, 3);
	/* The medium holds XTS ciphertext under the key, tweak = LBA. */
	static u8 want[300 * 512];
	memcpy(want, gram + G_BUF, bytes);
	struct xts_key k;
	u8 raw[64];
	for (unsigned i = 0; i < 64; i++)
		raw[i] = (u8)(i * 3 + 1);
	xts_setkey(&k, raw);
	xts_encrypt(&k, 100, want, n);
	CHECK(memcmp(dp[0].disk + 100 * SECTOR_SIZE, want, bytes) == 0);
	CHECK(memcmp(dp[0].disk + 100 * SECTOR_SIZE, gram + G_BUF, 512) != 0);
	/* The guest's received-FIS area has the D2H FIS. */
	CHECK_EQ(gram[G_FB(0) + AHCI_RFIS_D2H + 2], 0x50);

	/* Read back into other buffers: plaintext. */
	build(0, 5, ATA_CMD_READ_DMA_EXT, 100, n, false, 0x80000, bytes, 2, 0);
	reg_wr(PREG(0, PX_CI), 1u << 5);
	complete(0, 1u << 5, &rounds);
	CHECK(memcmp(gram + G_BUF + 0x80000, gram + G_BUF, bytes) == 0);
	CHECK(!dp[0].bad_dma);
}

static void test_ncq(void)
{
	setup();
	/* 8 NCQ writes of 16 sectors at once, then 8 reads. */
	for (unsigned s = 0; s < 8; s++) {
		fill(s * 8192, 8192, (u8)s);
		build(0, s, ATA_CMD_WRITE_FPDMA, 1000 + 16 * s, 16, true, s * 8192, 8192, 1, 0);
	}
	reg_wr(PREG(0, PX_SACT), 0xFF);
	reg_wr(PREG(0, PX_CI), 0xFF);
	CHECK_EQ(dp[0].sact, 0xFF);
	unsigned rounds;
	u32 is = complete(0, 0xFF, &rounds);
	CHECK(is & PX_IS_SDBS);
	CHECK_EQ(reg_rd(PREG(0, PX_SACT)), 0);
	for (unsigned s = 0; s < 8; s++)
		build(0, s + 8, ATA_CMD_READ_FPDMA, 1000 + 16 * s, 16, false, 0x100000 + s * 8192, 8192, 1, 0);
	reg_wr(PREG(0, PX_SACT), 0xFF00);
	reg_wr(PREG(0, PX_CI), 0xFF00);
	complete(0, 0xFF00, &rounds);
	CHECK(memcmp(gram + G_BUF + 0x100000, gram + G_BUF, 8 * 8192) == 0);
	/* An NCQ command whose tag is not its slot: refused (the device runs an aborted NOP). */
	build(0, 20, ATA_CMD_READ_FPDMA, 0, 1, false, 0, 512, 1, 0);
	gram[G_CT(0, 20) + 12] = 3 << 3;
	reg_wr(PREG(0, PX_SACT), 1u << 20);
	reg_wr(PREG(0, PX_CI), 1u << 20);
	is = complete(0, 1u << 20, &rounds);
	CHECK_EQ(dp[0].last_op, ATA_CMD_NOP);
	CHECK(is & PX_IS_TFES);
	CHECK(!dp[0].bad_dma);
}

/* Issue one command on port p slot s and report whether the device ran it as asked. */
static bool refused_as_nop(unsigned p, unsigned s)
{
	unsigned before = dp[p].ops, rounds;
	reg_wr(PREG(p, PX_CI), 1u << s);
	u32 is = complete(p, 1u << s, &rounds);
	bool nop = dp[p].ops == before + 1 && dp[p].last_op == ATA_CMD_NOP && (is & PX_IS_TFES);
	/* The guest's recovery: stop and restart the port. */
	reg_wr(PREG(p, PX_CMD), PX_CMD_FRE);
	reg_wr(PREG(p, PX_SERR), ~0u);
	dp[p].is = 0;
	dp[p].tfd = 0x50;
	reg_wr(PREG(p, PX_CMD), PX_CMD_FRE | PX_CMD_ST);
	return nop;
}

static void test_refusals(void)
{
	setup();
	/* Opcodes off the allow-list: SECURITY, DOWNLOAD MICROCODE, DSM/TRIM, vendor, unknown. */
	static const u8 ops[] = { 0xF1, 0xF4, 0x92, 0x06, 0x80, 0xFF, 0x5C };
	for (unsigned i = 0; i < sizeof(ops); i++) {
		build(0, 1, ops[i], 0, 1, true, 0, 512, 1, 0);
		CHECK(refused_as_nop(0, 1));
	}
	/* The header says write, the FIS reads (and the reverse). */
	build(0, 2, ATA_CMD_READ_DMA_EXT, 0, 1, true, 0, 512, 1, 0);
	CHECK(refused_as_nop(0, 2));
	build(0, 2, ATA_CMD_WRITE_DMA_EXT, 0, 1, false, 0, 512, 1, 0);
	CHECK(refused_as_nop(0, 2));
	/* PRDs at Parapet's memory, at MMIO (not guest RAM), or too short for the command. */
	build(0, 4, ATA_CMD_READ_DMA_EXT, 0, 1, false, 0, 512, 1, HV_BASE);
	CHECK(refused_as_nop(0, 4));
	build(0, 4, ATA_CMD_READ_DMA_EXT, 0, 1, false, 0, 512, 1, 0xFEE00000ull);
	CHECK(refused_as_nop(0, 4));
	build(0, 4, ATA_CMD_READ_DMA_EXT, 0, 2, false, 0, 512, 1, 0);
	CHECK(refused_as_nop(0, 4));
	/* The denied range, and a command running into it. */
	build(0, 6, ATA_CMD_WRITE_DMA_EXT, 4990, 16, true, 0, 8192, 1, 0);
	CHECK(refused_as_nop(0, 6));
	/* A command table in Parapet's memory; a port-multiplier port. */
	build(0, 7, ATA_CMD_READ_DMA_EXT, 0, 1, false, 0, 512, 1, 0);
	((struct ahci_cmd_header *)(gram + G_CLB(0)))[7].ctba = (u32)HV_BASE + 0x1000;
	CHECK(refused_as_nop(0, 7));
	build(0, 7, ATA_CMD_READ_DMA_EXT, 0, 1, false, 0, 512, 1, 0);
	((struct ahci_cmd_header *)(gram + G_CLB(0)))[7].dw0 |= 2u << 12;
	CHECK(refused_as_nop(0, 7));
	/* Allowed afterwards: the port still works. */
	build(0, 7, ATA_CMD_READ_DMA_EXT, 0, 1, false, 0, 512, 1, 0);
	CHECK(!refused_as_nop(0, 7));
	CHECK_EQ(dp[0].last_op, ATA_CMD_READ_DMA_EXT);
	CHECK(!dp[0].bad_dma);
}

static void test_rewrite_after_issue(void)
{
	setup();
	fill(0, 4096, 1);
	build(0, 0, ATA_CMD_WRITE_DMA_EXT, 10, 8, true, 0, 4096, 1, 0);
	reg_wr(PREG(0, PX_CI), 1);
	/* Another CPU rewrites the FIS's LBA, the PRD (to Parapet's memory) and moves PxCLB. */
	gram[G_CT(0, 0) + 4] = 200;
	struct ahci_prd_entry *e = (void *)(gram + G_CT(0, 0) + 0x80);
	e->dba = (u32)HV_BASE;
	reg_wr(PREG(0, PX_CLB), (u32)gpa(0x3800));
	unsigned rounds;
	complete(0, 1, &rounds);
	CHECK(!dp[0].bad_dma);
	static const u8 zero[4096];
	CHECK(memcmp(dp[0].disk + 200 * SECTOR_SIZE, zero, 4096) == 0); /* nothing at the rewritten LBA */
	CHECK(memcmp(dp[0].disk + 10 * SECTOR_SIZE, zero, 4096) != 0);
	CHECK_EQ(dp[0].clb, HV_BASE);
}

static void test_hba_reset(void)
{
	setup();
	build(0, 0, ATA_CMD_WRITE_DMA_EXT, 10, 256, true, 0, 256 * 512, 2, 0);
	reg_wr(PREG(0, PX_CI), 1);
	dev_run(0); /* the first chunk lands */
	reg_wr(AHCI_GHC, AHCI_GHC_HR);
	CHECK_EQ(reg_rd(PREG(0, PX_CI)), 0);
	CHECK_EQ(dp[0].clb, HV_BASE); /* still Parapet's list */
	/* The guest brings the port up again; nothing of the old command is issued. */
	reg_wr(PREG(0, PX_CMD), PX_CMD_FRE | PX_CMD_ST);
	dev_run(0);
	CHECK_EQ(dp[0].ops, 1);
	build(0, 1, ATA_CMD_READ_DMA_EXT, 10, 1, false, 0, 512, 1, 0);
	unsigned rounds;
	reg_wr(PREG(0, PX_CI), 2);
	CHECK(!(complete(0, 2, &rounds) & PX_IS_TFES));
	CHECK_EQ(dp[0].ops, 2);
}

static void test_unprotected_port(void)
{
	setup();
	/* Any command passes on a drive the policy does not name, with checked PRDs, straight to
	 * the guest's buffers. */
	memcpy(dp[1].disk + 512, "plain", 5);
	build(1, 0, ATA_CMD_READ_DMA_EXT, 1, 1, false, 0, 512, 1, 0);
	reg_wr(PREG(1, PX_CI), 1);
	unsigned rounds;
	complete(1, 1, &rounds);
	CHECK(memcmp(gram + G_BUF, "plain", 5) == 0);
	build(1, 1, 0xF1, 0, 1, true, 0, 512, 1, 0);
	reg_wr(PREG(1, PX_CI), 2);
	dev_run(1);
	CHECK_EQ(dp[1].last_op, 0xF1);
	/* But a PRD at Parapet's memory (where the protected port's shadows are) is refused. */
	reg_wr(PREG(1, PX_CMD), PX_CMD_FRE);
	dp[1].is = 0;
	reg_wr(PREG(1, PX_CMD), PX_CMD_FRE | PX_CMD_ST);
	build(1, 2, ATA_CMD_READ_DMA_EXT, 1, 1, false, 0, 512, 1, HV_BASE);
	CHECK(refused_as_nop(1, 2));
	CHECK(!dp[1].bad_dma);
}

static void test_firmware_memory(void)
{
	/* QEMU q35 with 512 MiB under SeaBIOS and Parapet: SeaBIOS keeps its AHCI lists at the
	 * reserved top of low RAM, Parapet's region is just below, MMCONFIG above. */
	static struct memmap m;
	memset(&m, 0, sizeof(m));
	memmap_add(&m, 0, 0x9FC00, E820_RAM);
	memmap_add(&m, 0x9FC00, 0x400, E820_RESERVED);
	memmap_add(&m, 0xF0000, 0x10000, E820_RESERVED);
	memmap_add(&m, 0x100000, 0x1EE00000 - 0x100000, E820_RAM);
	memmap_add(&m, 0x1EE00000, 0x1000000, E820_RESERVED); /* Parapet's */
	memmap_add(&m, 0x1FE00000, 0x1FFDF000 - 0x1FE00000, E820_RAM);
	memmap_add(&m, 0x1FFDF000, 0x21000, E820_RESERVED);
	memmap_add(&m, 0xB0000000, 0x10000000, E820_RESERVED); /* MMCONFIG */
	memmap_add(&m, 0xFEC00000, 0x1000, E820_RESERVED);
	gmem_init(&m);
	CHECK(gmem_map_dma(0x1FFDFC00, 1024) == NULL); /* RAM only until firmware memory is allowed */
	gmem_set_firmware(0xB0000000, 0x1EE00000, 0x1FE00000);
	CHECK(gmem_map_dma(0x1FFDFC00, 1024) != NULL);
	CHECK(gmem_map_dma(0x1FFD0000, 0x10000) != NULL); /* RAM running into firmware's */
	CHECK(gmem_map_dma(0x9FC00, 0x400) != NULL);
	CHECK(gmem_map_dma(0x100000, 4096) != NULL);
	CHECK(gmem_map_dma(0x1EE00000, 512) == NULL);    /* Parapet's region */
	CHECK(gmem_map_dma(0x1EDFF000, 0x2000) == NULL); /* ... partly */
	CHECK(gmem_map_dma(0x1FDFF000, 0x2000) == NULL);
	CHECK(gmem_map_dma(0xA0000, 512) == NULL);    /* VGA */
	CHECK(gmem_map_dma(0xC0000, 512) == NULL);    /* a hole in the map */
	CHECK(gmem_map_dma(0x20000000, 512) == NULL); /* beyond the map */
	CHECK(gmem_map_dma(0xB0000000, 512) == NULL); /* MMCONFIG: MMIO */
	CHECK(gmem_map_dma(0xFEC00000, 4) == NULL);
	CHECK(gmem_map_dma(0xFEE00000, 4) == NULL); /* MSI: interrupts */
	CHECK(gmem_map_dma(~0ull - 10, 20) == NULL);
	CHECK(gmem_map(0x1FFDFC00, 1024) == NULL); /* plain guest RAM accesses are unchanged */
	gmem_set_firmware(0, 0, 0);
}

TESTS(ahci_tests) = {
	{ "gmem: firmware's reserved RAM is the guest's for devices; Parapet's, VGA, MMIO are not",
	    test_firmware_memory },
	{ "ahci: ports taken onto shadow lists, guest's CLB/FB kept as its view", test_take },
	{ "ahci: encrypted write and read through shadow chunks, intermediate completions hidden",
	    test_encrypted_round_trip },
	{ "ahci: NCQ writes and reads at depth 8, tag must be the slot", test_ncq },
	{ "ahci: refused commands become an aborted NOP; the port recovers", test_refusals },
	{ "ahci: rewriting the table or PxCLB after issue changes nothing", test_rewrite_after_issue },
	{ "ahci: HBA reset mid-transfer forgets the slots, keeps the shadow list", test_hba_reset },
	{ "ahci: unprotected port passes any command with checked PRDs", test_unprotected_port },
	{ NULL, NULL },
};
