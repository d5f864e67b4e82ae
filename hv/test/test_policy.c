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

static void build(struct rec *r, unsigned nkeys, const struct policy_drive *d, const struct policy_range *rg,
    unsigned nranges)
{
	memset(r, 0, sizeof(*r));
	struct policy_header h = { .version = POLICY_VERSION,
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

static const struct policy_drive drive0 = {
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
	r.b[8] = 2;
	expect_refused(&r, true, "version");
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

static void test_storage_decisions(void)
{
	struct rec r;
	build(&r, 2, &drive0, ranges0, 3);
	CHECK(policy_parse(r.b, r.len, &pol) == NULL);
	u8 key1[64];
	memcpy(key1, pol.keys[1], 64);
	storage_init(&pol);
	CHECK_EQ(pol.keys[0][0], 0); /* raw keys wiped once expanded */

	struct storage_id id = { .channel = 0, .position = 0 };
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
	{ "storage: ranges, defaults, denial and per-key XTS", test_storage_decisions },
	{ NULL, NULL },
};
