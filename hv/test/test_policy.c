/* The policy record parser and the storage service's per-sector decisions. */
#include "test.h"
#include "handoff/policy.h"
#include "services/storage.h"
#include "crypto/xts.h"
#include <string.h>

/* A record with `nkeys` keys, one drive and its ranges, built as the CLI builds it. */
struct rec {
	u8 b[4096];
	size_t len;
};

static void seal(struct rec *r)
{
	struct policy_header h;
	memcpy(&h, r->b, sizeof(h));
	h.crc32 = 0;
	memcpy(r->b, &h, sizeof(h));
	h.crc32 = policy_crc32(r->b, r->len);
	memcpy(r->b, &h, sizeof(h));
}

static void build_v(struct rec *r, unsigned version, unsigned nkeys, const void *d, const struct policy_range *rg,
    unsigned nranges)
{
	memset(r, 0, sizeof(*r));
	struct policy_header h = { .version = (u16)version,
		.header_size = 32,
		.nkeys = (u16)nkeys,
		.ndrives = 1,
		.nranges = (u16)nranges };
	memcpy(h.magic, POLICY_MAGIC, 8);
	h.total_size = (u32)(32 + 64 * nkeys + 48 + 24 * nranges);
	memcpy(r->b, &h, sizeof(h));
	u8 *p = r->b + 32;
	for (unsigned k = 0; k < nkeys; k++, p += 64)
		for (unsigned i = 0; i < 64; i++)
			p[i] = (u8)(k * 64 + i + 1);
	memcpy(p, d, 48);
	p += 48;
	memcpy(p, rg, 24 * nranges);
	r->len = h.total_size;
	seal(r);
}

static void build(struct rec *r, unsigned nkeys, const struct policy_drive *d, const struct policy_range *rg,
    unsigned nranges)
{
	build_v(r, POLICY_VERSION, nkeys, d, rg, nranges);
}

static void build1(struct rec *r, unsigned nkeys, const struct policy_drive_v1 *d, const struct policy_range *rg,
    unsigned nranges)
{
	build_v(r, POLICY_VERSION_1, nkeys, d, rg, nranges);
}

/* IDE primary master, v2. */
static const struct policy_drive drive0 = { .match = POLICY_MATCH_TRANSPORT | POLICY_MATCH_PORT,
	.transport = POLICY_TRANSPORT_IDE,
	.default_action = POLICY_ENCRYPT,
	.first_range = 0,
	.nranges = 3,
	.block_size = 512 };
/* The same drive as version 1 named it. */
static const struct policy_drive_v1 drive0_v1 = {
	.match = POLICY_MATCH_PORT, .default_action = POLICY_ENCRYPT, .first_range = 0, .nranges = 3
};
static const struct policy_range ranges0[3] = {
	{ .first_lba = 100, .count = 50, .action = POLICY_PLAIN },
	{ .first_lba = 1000, .count = 10, .action = POLICY_DENY },
	{ .first_lba = 2000, .count = 100, .action = POLICY_ENCRYPT, .key = 1 },
};

static struct policy pol;

static void test_valid_record(void)
{
	struct rec r;
	build(&r, 2, &drive0, ranges0, 3);
	CHECK(policy_is_record(r.b, r.len));
	CHECK(policy_parse(r.b, r.len, &pol) == NULL);
	CHECK_EQ(pol.nkeys, 2);
	CHECK_EQ(pol.ndrives, 1);
	CHECK_EQ(pol.nranges, 3);
	CHECK_EQ(pol.keys[1][0], 65);
	CHECK_EQ(pol.ranges[2].first_lba, 2000);
	CHECK_EQ(pol.flags, 0); /* as every record written before flags existed */
	CHECK_EQ(pol.version, 2);
	CHECK(memcmp(&pol.drives[0], &drive0, sizeof(drive0)) == 0);
}

/* A version 1 record parses into the version 2 form: transport IDE, channel as port, 512 bytes. */
static void test_v1_record(void)
{
	struct rec r;
	struct policy_drive_v1 v = drive0_v1;
	v.match = POLICY_MATCH_PCI | POLICY_MATCH_PORT | POLICY_MATCH_SERIAL;
	v.pci_bus = 0x12;
	v.pci_devfn = 0xfb;
	v.channel = 1;
	v.position = 1;
	memcpy(v.serial, "QM00002             ", 20);
	build1(&r, 2, &v, ranges0, 3);
	CHECK(policy_parse(r.b, r.len, &pol) == NULL);
	CHECK_EQ(pol.version, 1);
	const struct policy_drive *d = &pol.drives[0];
	CHECK_EQ(d->match, POLICY_MATCH_PCI | POLICY_MATCH_PORT | POLICY_MATCH_SERIAL | POLICY_MATCH_TRANSPORT);
	CHECK_EQ(d->transport, POLICY_TRANSPORT_IDE);
	CHECK_EQ(d->pci_bus, 0x12);
	CHECK_EQ(d->pci_devfn, 0xfb);
	CHECK_EQ(d->port, 1);
	CHECK_EQ(d->position, 1);
	CHECK_EQ(d->nsid, 0);
	CHECK_EQ(d->block_size, 512);
	CHECK_EQ(d->default_action, POLICY_ENCRYPT);
	CHECK_EQ(d->nranges, 3);
	CHECK(memcmp(d->serial, "QM00002             ", 20) == 0);
	/* Version 1 ignored the fields its flags did not use; they are zero in the version 2 form. */
	v = drive0_v1;
	v.match = POLICY_MATCH_SERIAL;
	v.channel = 1;
	v.pci_bus = 3;
	memcpy(v.serial, "X", 1);
	build1(&r, 2, &v, ranges0, 3);
	CHECK(policy_parse(r.b, r.len, &pol) == NULL);
	CHECK_EQ(pol.drives[0].match, POLICY_MATCH_SERIAL | POLICY_MATCH_TRANSPORT);
	CHECK_EQ(pol.drives[0].port, 0);
	CHECK_EQ(pol.drives[0].pci_bus, 0);
	/* A version 1 serial-only entry names IDE drives only: not an AHCI drive of that serial. */
	storage_init(&pol);
	struct storage_id id = { .transport = STORAGE_AHCI, .block_size = 512, .serial = "X" };
	CHECK(storage_bind(&id) == NULL);
	id.transport = STORAGE_IDE;
	CHECK(storage_bind(&id) != NULL);
}

static void expect_refused(struct rec *r, bool reseal, const char *what)
{
	if (reseal)
		seal(r);
	const char *err = policy_parse(r->b, r->len, &pol);
	CHECK(err != NULL);
	if (err && !strstr(err, what)) {
		fprintf(stderr, "  got '%s', expected '%s'\n", err, what);
		CHECK(0);
	}
	CHECK_EQ(pol.nkeys, 0); /* nothing half-parsed stays */
}

static void test_flags(void)
{
	struct rec r;
	build(&r, 2, &drive0, ranges0, 3);
	r.b[22] = 1; /* header offset 22: flags, little-endian */
	seal(&r);
	CHECK(policy_parse(r.b, r.len, &pol) == NULL);
	CHECK_EQ(pol.flags, POLICY_FLAG_ALLOW_NO_IOMMU);
	CHECK_EQ(pol.nkeys, 2);
	build(&r, 2, &drive0, ranges0, 3);
	r.b[22] = 1 | 4; /* the known bit with an unknown one */
	expect_refused(&r, true, "unknown header flags");
	CHECK_EQ(pol.flags, 0);
}

static void test_malformed_records(void)
{
	struct rec r;
	build(&r, 2, &drive0, ranges0, 3);
	r.b[40] ^= 1;
	expect_refused(&r, false, "crc32");
	build(&r, 2, &drive0, ranges0, 3);
	r.b[0] = 'X';
	expect_refused(&r, true, "magic");
	build(&r, 2, &drive0, ranges0, 3);
	r.b[8] = 3;
	expect_refused(&r, true, "unsupported version");
	build(&r, 2, &drive0, ranges0, 3);
	r.b[8] = 0;
	expect_refused(&r, true, "unsupported version");
	build(&r, 2, &drive0, ranges0, 3);
	r.len -= 1;
	expect_refused(&r, false, "truncated");
	build(&r, 2, &drive0, ranges0, 3);
	r.b[12] += 24;
	expect_refused(&r, true, "total_size");
	build(&r, 2, &drive0, ranges0, 3);
	r.b[28] = 1;
	expect_refused(&r, true, "reserved");
	build(&r, 2, &drive0, ranges0, 3);
	r.b[22] = 2; /* flags bit 1: not defined */
	expect_refused(&r, true, "unknown header flags");
	build(&r, 2, &drive0, ranges0, 3);
	r.b[23] = 0x80; /* flags bit 15 */
	expect_refused(&r, true, "unknown header flags");
	expect_refused(&(struct rec){ .len = 10 }, false, "shorter");

	struct policy_drive d = drive0;
	d.match = 0;
	build(&r, 2, &d, ranges0, 3);
	expect_refused(&r, false, "match");
	d = drive0;
	d.default_action = 7;
	build(&r, 2, &d, ranges0, 3);
	expect_refused(&r, false, "default");
	d = drive0;
	d.nranges = 4;
	build(&r, 2, &d, ranges0, 3);
	expect_refused(&r, false, "out of bounds");

	struct policy_range rg[3];
	memcpy(rg, ranges0, sizeof(rg));
	rg[2].key = 2;
	build(&r, 2, &drive0, rg, 3);
	expect_refused(&r, false, "key");
	memcpy(rg, ranges0, sizeof(rg));
	rg[1].first_lba = 120;
	build(&r, 2, &drive0, rg, 3);
	expect_refused(&r, false, "overlaps");
	memcpy(rg, ranges0, sizeof(rg));
	rg[0].count = 0;
	build(&r, 2, &drive0, rg, 3);
	expect_refused(&r, false, "empty");

	build(&r, 2, &drive0, ranges0, 3);
	memset(r.b + 32 + 32, 0, 32);
	memset(r.b + 32, 0, 32);
	expect_refused(&r, true, "equal halves");
}

/* A v2 drive entry differing from drive0 in one way, refused with `what`. */
static void refuse_v2(struct policy_drive d, const char *what)
{
	struct rec r;
	build(&r, 2, &d, ranges0, 3);
	expect_refused(&r, false, what);
}

static void test_v2_drive_refusals(void)
{
	struct policy_drive d = drive0;
	d.match = 0;
	refuse_v2(d, "no match criterion");
	d.match = POLICY_MATCH_SERIAL | 0x20;
	refuse_v2(d, "unknown match flags");
	d.match = 0x80 | POLICY_MATCH_TRANSPORT;
	refuse_v2(d, "unknown match flags");
	d = drive0;
	d.transport = 3;
	refuse_v2(d, "unknown transport");
	d = drive0;
	d.match = POLICY_MATCH_SERIAL;
	memcpy(d.serial, "S", 1);
	d.transport = POLICY_TRANSPORT_AHCI;
	refuse_v2(d, "transport set without its match flag");
	d = drive0;
	d.pci_devfn = 8;
	refuse_v2(d, "PCI address set without its match flag");
	d = drive0;
	d.match = POLICY_MATCH_PORT;
	refuse_v2(d, "port match without a transport match");
	d = drive0;
	d.transport = POLICY_TRANSPORT_NVME;
	refuse_v2(d, "port match on NVMe");
	d = drive0;
	d.port = 2;
	refuse_v2(d, "IDE channel (port) above 1");
	d = drive0;
	d.position = 2;
	refuse_v2(d, "IDE position above 1");
	d = drive0;
	d.transport = POLICY_TRANSPORT_AHCI;
	d.port = 32;
	refuse_v2(d, "AHCI port above 31");
	d.port = 31;
	d.position = 1;
	refuse_v2(d, "AHCI position not 0");
	d = drive0;
	d.match = POLICY_MATCH_TRANSPORT;
	d.port = 1;
	refuse_v2(d, "port or position set without its match flag");
	d = drive0;
	d.match = POLICY_MATCH_TRANSPORT | POLICY_MATCH_NSID;
	d.nsid = 1;
	refuse_v2(d, "namespace match without transport NVMe");
	d.match = POLICY_MATCH_NSID;
	refuse_v2(d, "namespace match without transport NVMe");
	d.match = POLICY_MATCH_TRANSPORT | POLICY_MATCH_NSID;
	d.transport = POLICY_TRANSPORT_NVME;
	d.nsid = 0;
	refuse_v2(d, "namespace id 0 or 0xFFFFFFFF");
	d.nsid = 0xFFFFFFFFu;
	refuse_v2(d, "namespace id 0 or 0xFFFFFFFF");
	d = drive0;
	d.nsid = 1;
	refuse_v2(d, "namespace id set without its match flag");
	d = drive0;
	d.serial[19] = ' ';
	refuse_v2(d, "serial set without its match flag");
	d = drive0;
	d.block_size = 0;
	refuse_v2(d, "block size 0");
	static const u32 bad_sizes[] = { 256, 513, 768, 3072, 8192, 0x80000000u };
	for (unsigned i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		d.block_size = bad_sizes[i];
		refuse_v2(d, "block size not a power of two in 512..4096");
	}
	d = drive0;
	d.reserved0 = 1;
	refuse_v2(d, "reserved bytes not zero");
	d = drive0;
	d.reserved1 = 0x100;
	refuse_v2(d, "reserved bytes not zero");
	d = drive0;
	d.reserved2[3] = 1;
	refuse_v2(d, "reserved bytes not zero");
	d = drive0;
	d.default_action = 3;
	refuse_v2(d, "default");
	d = drive0;
	d.first_range = 1;
	refuse_v2(d, "out of bounds");

	/* What is valid: every block size of the range; AHCI port 31; NVMe namespace; transport alone. */
	struct rec r;
	for (u32 bs = 512; bs <= 4096; bs *= 2) {
		d = drive0;
		d.block_size = bs;
		build(&r, 2, &d, ranges0, 3);
		CHECK(policy_parse(r.b, r.len, &pol) == NULL);
	}
	d = drive0;
	d.transport = POLICY_TRANSPORT_AHCI;
	d.port = 31;
	build(&r, 2, &d, ranges0, 3);
	CHECK(policy_parse(r.b, r.len, &pol) == NULL);
	d = drive0;
	d.match = POLICY_MATCH_TRANSPORT | POLICY_MATCH_NSID;
	d.transport = POLICY_TRANSPORT_NVME;
	d.nsid = 1;
	build(&r, 2, &d, ranges0, 3);
	CHECK(policy_parse(r.b, r.len, &pol) == NULL);
	d.match = POLICY_MATCH_TRANSPORT;
	d.nsid = 0;
	build(&r, 2, &d, ranges0, 3);
	CHECK(policy_parse(r.b, r.len, &pol) == NULL);
}

/* Version 1 entries keep version 1's checks; the version 2 fields mean nothing there. */
static void test_v1_refusals(void)
{
	struct rec r;
	struct policy_drive_v1 v = drive0_v1;
	v.match = 0;
	build1(&r, 2, &v, ranges0, 3);
	expect_refused(&r, false, "bad match flags");
	v.match = POLICY_MATCH_PORT | POLICY_MATCH_TRANSPORT; /* a v2 flag in a v1 entry */
	build1(&r, 2, &v, ranges0, 3);
	expect_refused(&r, false, "bad match flags");
	v = drive0_v1;
	v.channel = 2;
	build1(&r, 2, &v, ranges0, 3);
	expect_refused(&r, false, "channel or position out of range");
	v = drive0_v1;
	v.position = 2;
	build1(&r, 2, &v, ranges0, 3);
	expect_refused(&r, false, "channel or position out of range");
	v = drive0_v1;
	v.reserved[15] = 1;
	build1(&r, 2, &v, ranges0, 3);
	expect_refused(&r, false, "reserved bytes not zero");
	v = drive0_v1;
	v.default_action = 3;
	build1(&r, 2, &v, ranges0, 3);
	expect_refused(&r, false, "default");
	v = drive0_v1;
	v.nranges = 4;
	build1(&r, 2, &v, ranges0, 3);
	expect_refused(&r, false, "out of bounds");
	struct policy_range rg[3];
	memcpy(rg, ranges0, sizeof(rg));
	rg[1].first_lba = 120;
	build1(&r, 2, &drive0_v1, rg, 3);
	expect_refused(&r, false, "overlaps");
}

/* Bind: transport, port, namespace and serial each decide; a block size that does not fit denies all. */
static void test_storage_bind(void)
{
	static struct policy_drive d[5];
	memset(d, 0, sizeof(d));
	d[0] = (struct policy_drive){ .match = POLICY_MATCH_TRANSPORT | POLICY_MATCH_PORT,
		.transport = POLICY_TRANSPORT_AHCI,
		.port = 3,
		.default_action = POLICY_PLAIN,
		.block_size = 512 };
	d[1] = (struct policy_drive){ .match = POLICY_MATCH_TRANSPORT | POLICY_MATCH_NSID | POLICY_MATCH_PCI,
		.transport = POLICY_TRANSPORT_NVME,
		.pci_bus = 2,
		.nsid = 7,
		.default_action = POLICY_PLAIN,
		.block_size = 512 };
	d[2] = (struct policy_drive){ .match = POLICY_MATCH_SERIAL, .default_action = POLICY_PLAIN, .block_size = 512 };
	memcpy(d[2].serial, "ANY                 ", 20);
	d[3] = (struct policy_drive){ .match = POLICY_MATCH_TRANSPORT | POLICY_MATCH_PORT,
		.transport = POLICY_TRANSPORT_AHCI,
		.port = 4,
		.default_action = POLICY_PLAIN,
		.block_size = 4096 };
	d[4] = (struct policy_drive){ .match = POLICY_MATCH_TRANSPORT | POLICY_MATCH_PORT,
		.transport = POLICY_TRANSPORT_IDE,
		.port = 1,
		.position = 1,
		.default_action = POLICY_PLAIN,
		.block_size = 512 };
	/* A record with five drives and no keys or ranges. */
	struct rec r;
	memset(&r, 0, sizeof(r));
	struct policy_header h = { .version = POLICY_VERSION, .header_size = 32, .ndrives = 5 };
	memcpy(h.magic, POLICY_MAGIC, 8);
	h.total_size = 32 + 5 * 48;
	memcpy(r.b, &h, sizeof(h));
	memcpy(r.b + 32, d, sizeof(d));
	r.len = h.total_size;
	seal(&r);
	CHECK(policy_parse(r.b, r.len, &pol) == NULL);
	storage_init(&pol);

	struct storage_id ahci3 = { .transport = STORAGE_AHCI, .port = 3, .block_size = 512 };
	const struct storage_drive *b = storage_bind(&ahci3);
	CHECK(b != NULL && !storage_denies_all(b));
	CHECK(storage_allowed(b, 0, 100));
	struct storage_id ide3 = ahci3;
	ide3.transport = STORAGE_IDE; /* port 3 of another transport: not named */
	CHECK(storage_bind(&ide3) == NULL);
	struct storage_id ide_slave = { .transport = STORAGE_IDE, .port = 1, .position = 1, .block_size = 512 };
	CHECK(storage_bind(&ide_slave) != NULL);
	ide_slave.position = 0;
	CHECK(storage_bind(&ide_slave) == NULL);

	struct storage_id ns = { .transport = STORAGE_NVME, .bus = 2, .nsid = 7, .block_size = 512 };
	CHECK(storage_bind(&ns) != NULL);
	ns.nsid = 8;
	CHECK(storage_bind(&ns) == NULL);
	ns.nsid = 7;
	ns.bus = 3;
	CHECK(storage_bind(&ns) == NULL);

	/* A serial on any transport. */
	struct storage_id any = { .transport = STORAGE_NVME, .nsid = 1, .block_size = 512 };
	memcpy(any.serial, "ANY                 ", 20);
	CHECK(storage_bind(&any) != NULL);

	/* Named, block sizes differ: bound, every sector denied, never passed untouched. */
	ahci3.block_size = 4096;
	b = storage_bind(&ahci3);
	CHECK(b != NULL && storage_denies_all(b));
	CHECK(!storage_allowed(b, 0, 1));
	CHECK(!storage_allowed(b, 123456, 8));
	u16 key;
	u64 run;
	CHECK_EQ(storage_action(b, 5, 77, &key, &run), POLICY_DENY);
	CHECK_EQ(run, 77);
	/* The policy says 4096 and so does the drive: still denied, only 512-byte blocks are supported. */
	struct storage_id ahci4 = { .transport = STORAGE_AHCI, .port = 4, .block_size = 4096 };
	b = storage_bind(&ahci4);
	CHECK(b != NULL && storage_denies_all(b));
	/* The policy says 4096, the drive has 512: denied. */
	ahci4.block_size = 512;
	b = storage_bind(&ahci4);
	CHECK(b != NULL && storage_denies_all(b));
	CHECK(!storage_denies_all(NULL));
}

static void test_storage_decisions(void)
{
	struct rec r;
	build(&r, 2, &drive0, ranges0, 3);
	CHECK(policy_parse(r.b, r.len, &pol) == NULL);
	u8 key1[64];
	memcpy(key1, pol.keys[1], 64);
	storage_init(&pol);
	CHECK_EQ(pol.keys[0][0], 0); /* raw keys wiped once expanded */

	struct storage_id id = { .transport = STORAGE_IDE, .port = 0, .position = 0, .block_size = 512 };
	const struct storage_drive *d = storage_bind(&id);
	CHECK(d != NULL);
	id.position = 1;
	CHECK(storage_bind(&id) == NULL);

	u16 key;
	u64 run;
	CHECK_EQ(storage_action(d, 0, 1000, &key, &run), POLICY_ENCRYPT);
	CHECK_EQ(run, 100); /* up to the plaintext range */
	CHECK_EQ(key, 0);
	CHECK_EQ(storage_action(d, 120, 1000, &key, &run), POLICY_PLAIN);
	CHECK_EQ(run, 30);
	CHECK_EQ(storage_action(d, 2050, 10, &key, &run), POLICY_ENCRYPT);
	CHECK_EQ(key, 1);
	CHECK_EQ(run, 10);
	CHECK(storage_allowed(d, 0, 1000));
	CHECK(!storage_allowed(d, 999, 2));
	CHECK(!storage_allowed(d, 1009, 1));
	CHECK(storage_allowed(d, 1010, 5000));
	CHECK(!storage_allowed(d, ~0ull - 1, 4));

	/* Sectors 1998..2001: default key 0 for two, key 1 for two, each with its own LBA tweak. */
	static u8 buf[4 * 512], want[4 * 512];
	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = want[i] = (u8)(i * 7);
	storage_transform(d, 1998, buf, 4, true);
	struct xts_key k0, k1;
	struct rec r2;
	build(&r2, 2, &drive0, ranges0, 3);
	xts_setkey(&k0, r2.b + 32);
	xts_setkey(&k1, key1);
	xts_encrypt(&k0, 1998, want, 2);
	xts_encrypt(&k1, 2000, want + 1024, 2);
	CHECK(memcmp(buf, want, sizeof(buf)) == 0);
	storage_transform(d, 1998, buf, 4, false);
	for (unsigned i = 0; i < sizeof(buf); i++)
		if (buf[i] != (u8)(i * 7)) {
			CHECK(0);
			break;
		}
	/* Plaintext range: untouched. */
	storage_transform(d, 110, buf, 4, true);
	CHECK_EQ(buf[5], (u8)35);
}

TESTS(policy_tests) = {
	{ "policy: a valid record parses", test_valid_record },
	{ "policy: header flags: ALLOW_NO_IOMMU kept, unknown bits refused", test_flags },
	{ "policy: malformed records are refused with a reason", test_malformed_records },
	{ "policy: a version 1 record parses into the version 2 form", test_v1_record },
	{ "policy: every malformed version 2 drive entry is refused", test_v2_drive_refusals },
	{ "policy: version 1 drive entries keep version 1's checks", test_v1_refusals },
	{ "storage: bind by transport, port, namespace, serial; block size mismatch denies all", test_storage_bind },
	{ "storage: ranges, defaults, denial and per-key XTS", test_storage_decisions },
	{ NULL, NULL },
};
