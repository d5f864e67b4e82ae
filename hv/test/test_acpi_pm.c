/* power/acpi_pm.c: the FADT fields Parapet takes, and the \_Sn search of the DSDT's AML. */
#include "test.h"
#include "power/acpi_pm.h"
#include <stdlib.h>
#include <string.h>

static u8 mem[0x10000]; /* "physical" 0 .. 64 KiB */

static const void *map(u64 pa, u64 len)
{
	if (pa >= sizeof(mem) || len > sizeof(mem) - pa)
		return NULL;
	return mem + pa;
}

static void put(u8 *t, unsigned off, u64 v, unsigned size)
{
	memcpy(t + off, &v, size);
}

static void put_gas(u8 *t, unsigned off, u8 space, u8 width, u64 addr)
{
	t[off] = space;
	t[off + 1] = width;
	t[off + 3] = width == 8 ? 1 : width == 16 ? 2 : 3;
	put(t, off + 4, addr, 8);
}

/* A table header with a right checksum (computed over len bytes). */
static u8 *table(u64 pa, const char *sig, u32 len)
{
	u8 *t = mem + pa, s = 0;
	memcpy(t, sig, 4);
	put(t, 4, len, 4);
	t[8] = 1;
	t[9] = 0;
	for (u32 i = 0; i < len; i++)
		s = (u8)(s + t[i]);
	t[9] = (u8)-s;
	return t;
}

/* What QEMU's pc machine puts in its DSDT (hw/i386/acpi-build.c build_dsdt):
 * Scope(\) { Name(_S3, Package(4){One, One, Zero, Zero}); Name(_S4, Package(4){2, 2, Zero, Zero});
 *            Name(_S5, Package(4){Zero, Zero, Zero, Zero}) } */
static const u8 qemu_sx[] = {
	0x10,
	0x29,
	0x5C,
	0x00,
	0x08,
	'_',
	'S',
	'3',
	'_',
	0x12,
	0x06,
	0x04,
	0x01,
	0x01,
	0x00,
	0x00,
	0x08,
	'_',
	'S',
	'4',
	'_',
	0x12,
	0x08,
	0x04,
	0x0A,
	0x02,
	0x0A,
	0x02,
	0x00,
	0x00,
	0x08,
	'_',
	'S',
	'5',
	'_',
	0x12,
	0x06,
	0x04,
	0x00,
	0x00,
	0x00,
	0x00,
};

static void dsdt(u64 pa, const u8 *aml, u32 n)
{
	memcpy(mem + pa + 36, aml, n);
	table(pa, "DSDT", 36 + n);
}

static void fadt_full(void)
{
	memset(mem, 0, sizeof(mem));
	u8 *f = mem + 0x1000;
	put(f, 36, 0x3000, 4);  /* FIRMWARE_CTRL */
	put(f, 132, 0x3100, 8); /* X_FIRMWARE_CTRL wins */
	put(f, 40, 0x4000, 4);  /* DSDT; X_DSDT 0 */
	put(f, 56, 0x600, 4);
	put(f, 60, 0x640, 4);
	put(f, 64, 0x604, 4);
	put(f, 68, 0x644, 4);
	put_gas(f, 148, GAS_SPACE_IO, 32, 0xB000);  /* X_PM1a_EVT_BLK */
	put_gas(f, 160, GAS_SPACE_IO, 32, 0x12345); /* X_PM1b_EVT_BLK: no port */
	put_gas(f, 172, GAS_SPACE_IO, 16, 0xB004);  /* X_PM1a_CNT_BLK */
	/* X_PM1b_CNT_BLK absent: the 32-bit field stands. */
	put(f, 112, FADT_RESET_REG_SUP | (1u << 4), 4);
	put_gas(f, 116, GAS_SPACE_IO, 8, 0xCF9);
	f[128] = 6;
	put_gas(f, 244, GAS_SPACE_MEMORY, 8, 0xFED80100);
	put_gas(f, 256, GAS_SPACE_MEMORY, 8, 0xFED80104);
	table(0x1000, "FACP", 276);
	dsdt(0x4000, qemu_sx, sizeof(qemu_sx));

	struct acpi_pm pm;
	char why[80] = "";
	CHECK(acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	CHECK_EQ(pm.fadt, 0x1000);
	CHECK_EQ(pm.facs, 0x3100);
	CHECK_EQ(pm.facs32, 0x3000);
	CHECK_EQ(pm.facs64, 0x3100);
	CHECK_EQ(pm.dsdt, 0x4000);
	CHECK_EQ(pm.pm1a_evt, 0xB000);
	CHECK_EQ(pm.pm1b_evt, 0);
	CHECK_EQ(pm.pm1a_cnt, 0xB004);
	CHECK_EQ(pm.pm1b_cnt, 0x644);
	CHECK(!pm.pm1_in_memory);
	CHECK(pm.has_reset_reg);
	CHECK_EQ(pm.reset_reg.space, GAS_SPACE_IO);
	CHECK_EQ(pm.reset_reg.bit_width, 8);
	CHECK_EQ(pm.reset_reg.addr, 0xCF9);
	CHECK_EQ(pm.reset_value, 6);
	CHECK_EQ(pm.sleep_cnt.addr, 0xFED80100);
	CHECK_EQ(pm.sleep_sts.addr, 0xFED80104);
	CHECK_EQ(pm.flags, FADT_RESET_REG_SUP | (1u << 4));
	for (unsigned s = 0; s < 3; s++)
		CHECK(!pm.sx_present[s]);
	CHECK(pm.sx_present[3] && pm.sx_present[4] && pm.sx_present[5]);
	CHECK_EQ(pm.slp_typa[3], 1);
	CHECK_EQ(pm.slp_typb[3], 1);
	CHECK_EQ(pm.slp_typa[4], 2);
	CHECK_EQ(pm.slp_typb[4], 2);
	CHECK_EQ(pm.slp_typa[5], 0);
	CHECK_EQ(pm.slp_typb[5], 0);

	/* X_DSDT wins over DSDT; a DSDT with a bad checksum is no DSDT, but the FADT still reads. */
	put(f, 140, 0x5000, 8);
	table(0x1000, "FACP", 276);
	dsdt(0x5000, qemu_sx, sizeof(qemu_sx));
	mem[0x5000 + 40] ^= 1;
	CHECK(acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	CHECK_EQ(pm.dsdt, 0x5000);
	CHECK(!pm.sx_present[3] && !pm.sx_present[5]);
	CHECK_EQ(pm.pm1a_cnt, 0xB004);
	/* A table signed "DSDT" is needed, not just any valid one. */
	mem[0x5000 + 40] ^= 1;
	table(0x5000, "SSDT", 36 + sizeof(qemu_sx));
	CHECK(acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	CHECK(!pm.sx_present[3]);
}

static void fadt_acpi1(void)
{
	memset(mem, 0, sizeof(mem));
	u8 *f = mem + 0x1000;
	put(f, 36, 0x3000, 4);
	put(f, 40, 0x4000, 4);
	put(f, 56, 0x400, 4);
	put(f, 64, 0x404, 4);
	put(f, 112, FADT_RESET_REG_SUP, 4); /* claimed, but the table has no RESET_REG */
	/* Bytes past the table's length are not read as fields. */
	put_gas(f, 116, GAS_SPACE_IO, 8, 0xCF9);
	f[128] = 6;
	put(f, 132, 0x3100, 8);
	put(f, 140, 0x5000, 8);
	put_gas(f, 172, GAS_SPACE_IO, 16, 0xB004);
	table(0x1000, "FACP", 116);
	static const u8 aml[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x02, 0x0A, 0x07, 0x0A, 0x07 };
	dsdt(0x4000, aml, sizeof(aml));

	struct acpi_pm pm;
	char why[80];
	CHECK(acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	CHECK_EQ(pm.facs, 0x3000);
	CHECK_EQ(pm.facs32, 0x3000);
	CHECK_EQ(pm.facs64, 0);
	CHECK_EQ(pm.dsdt, 0x4000);
	CHECK_EQ(pm.pm1a_evt, 0x400);
	CHECK_EQ(pm.pm1a_cnt, 0x404);
	CHECK_EQ(pm.pm1b_evt, 0);
	CHECK_EQ(pm.pm1b_cnt, 0);
	CHECK_EQ(pm.flags, FADT_RESET_REG_SUP);
	CHECK(!pm.has_reset_reg);
	CHECK_EQ(pm.reset_reg.addr, 0);
	CHECK_EQ(pm.reset_value, 0);
	CHECK_EQ(pm.sleep_cnt.addr, 0);
	CHECK(pm.sx_present[5] && !pm.sx_present[3]);
	CHECK_EQ(pm.slp_typa[5], 7);

	/* Shorter still: a FADT that ends after PM1a_EVT_BLK, before the rest. */
	table(0x1000, "FACP", 60);
	CHECK(acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	CHECK_EQ(pm.pm1a_evt, 0x400);
	CHECK_EQ(pm.pm1a_cnt, 0);
	CHECK_EQ(pm.flags, 0);
	CHECK_EQ(pm.dsdt, 0x4000);
	/* A 32-bit port field above 0xFFFF is no port. */
	put(f, 64, 0x10404, 4);
	table(0x1000, "FACP", 116);
	CHECK(acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	CHECK_EQ(pm.pm1a_cnt, 0);
}

static void pm1_in_memory(void)
{
	memset(mem, 0, sizeof(mem));
	u8 *f = mem + 0x1000;
	put_gas(f, 172, GAS_SPACE_MEMORY, 16, 0xFED80004);
	put(f, 64, 0x404, 4);
	table(0x1000, "FACP", 268);
	struct acpi_pm pm;
	char why[80];
	CHECK(acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	CHECK(pm.pm1_in_memory);
	CHECK_EQ(pm.pm1a_cnt, 0x404); /* a memory GAS does not win over the port */
	/* The same for PM1b alone. */
	memset(f + 172, 0, 12);
	put_gas(f, 184, GAS_SPACE_MEMORY, 16, 0xFED80008);
	table(0x1000, "FACP", 268);
	CHECK(acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	CHECK(pm.pm1_in_memory);
	/* A memory GAS with address 0 is absent. */
	memset(f + 184, 0, 12);
	table(0x1000, "FACP", 268);
	CHECK(acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	CHECK(!pm.pm1_in_memory);
}

static void fadt_refused(void)
{
	memset(mem, 0, sizeof(mem));
	u8 *f = mem + 0x1000;
	put(f, 64, 0x404, 4);
	table(0x1000, "FACP", 244);
	struct acpi_pm pm;
	char why[80] = "";
	f[64] ^= 1; /* bad checksum */
	CHECK(!acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	CHECK(strstr(why, "checksum") != NULL);
	CHECK_EQ(pm.pm1a_cnt, 0);
	f[64] ^= 1;
	CHECK(acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	table(0x1000, "APIC", 244); /* a valid table, but not a FADT */
	why[0] = 0;
	CHECK(!acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
	CHECK(strstr(why, "APIC") != NULL);
	CHECK(!acpi_pm_read(map, 0, &pm, why, sizeof(why)));
	CHECK(!acpi_pm_read(map, 0xFFFF0, &pm, why, sizeof(why))); /* unmapped */
	CHECK(!acpi_pm_read(map, 0x1000, &pm, NULL, 0));           /* no room for a reason */
	char tiny[4];
	CHECK(!acpi_pm_read(map, 0x1000, &pm, tiny, sizeof(tiny)));
	CHECK_EQ(strlen(tiny), 3);
	put(f, 4, 20, 4); /* a length shorter than a header */
	CHECK(!acpi_pm_read(map, 0x1000, &pm, why, sizeof(why)));
}

/* aml_sleep_type over exactly these bytes, held at the end of a heap buffer so that ASan sees
 * any read past them. typa/typb are 0xEE when not written. */
static bool sx(const u8 *aml, u32 n, unsigned s, u8 *a, u8 *b)
{
	u8 *buf = malloc(n ? n : 1);
	memcpy(buf, aml, n);
	*a = *b = 0xEE;
	bool r = aml_sleep_type(buf, n, s, a, b);
	free(buf);
	return r;
}

#define SX(s, ...)                                      \
	({                                              \
		static const u8 _b[] = { __VA_ARGS__ }; \
		sx(_b, sizeof(_b), s, &a, &b);          \
	})

static void aml_names(void)
{
	u8 a, b;
	/* Name(_S3, Package(0x04){One, One, Zero, Zero}), plain and with the root prefix. */
	CHECK(SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x06, 0x04, 0x01, 0x01, 0x00, 0x00));
	CHECK(a == 1 && b == 1);
	CHECK(SX(3, 0x08, 0x5C, '_', 'S', '3', '_', 0x12, 0x06, 0x04, 0x01, 0x01, 0x00, 0x00));
	CHECK(a == 1 && b == 1);
	/* Another state's name does not match. */
	CHECK(!SX(4, 0x08, '_', 'S', '3', '_', 0x12, 0x06, 0x04, 0x01, 0x01, 0x00, 0x00));
	CHECK(a == 0xEE && b == 0xEE);
	/* Byte, Word, DWord and QWord constants. */
	CHECK(SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x08, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00));
	CHECK(a == 5 && b == 5);
	CHECK(SX(1, 0x08, '_', 'S', '1', '_', 0x12, 0x0A, 0x02, 0x0C, 0x06, 0, 0, 0, 0x0B, 0x03, 0x01));
	CHECK(a == 6 && b == 3);
	CHECK(SX(2, 0x08, '_', 'S', '2', '_', 0x12, 0x0C, 0x02, 0x0E, 0x04, 1, 2, 3, 4, 5, 6, 7, 0x01));
	CHECK(a == 4 && b == 1);
	/* A 2-byte PkgLength: 0x49 0x00 = 9, and 0x41 0x01 = 0x11. */
	CHECK(SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x49, 0x00, 0x04, 0x0A, 0x02, 0x0A, 0x03, 0x00, 0x00));
	CHECK(a == 2 && b == 3);
	CHECK(SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x41, 0x01, 0x04, 0x0A, 0x03, 0x0A, 0x04, 0x0E, 0, 0, 0, 0, 0, 0, 0,
	    0, 0x00));
	CHECK(a == 3 && b == 4);
	/* Bits 5-4 of a multi-byte PkgLength's lead byte are not part of the length. */
	CHECK(SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x77, 0x00, 0x04, 0x0A, 0x01, 0x0A, 0x02));
	CHECK(a == 1 && b == 2);
	/* _S5 = Package{Zero, Zero}; _S0; a package of one element (the second counts as 0). */
	CHECK(SX(5, 0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x00, 0x00));
	CHECK(a == 0 && b == 0);
	CHECK(SX(0, 0x08, '_', 'S', '0', '_', 0x12, 0x04, 0x02, 0x00, 0x00));
	CHECK(SX(1, 0x08, '_', 'S', '1', '_', 0x12, 0x04, 0x01, 0x0A, 0x02));
	CHECK(a == 2 && b == 0);
	/* Values are masked to 3 bits: 0x0D -> 5, OnesOp -> 7, 0x12FF -> 7. */
	CHECK(SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x05, 0x02, 0x0A, 0x0D, 0xFF));
	CHECK(a == 5 && b == 7);
	CHECK(SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x05, 0x01, 0x0B, 0xFF, 0x12));
	CHECK(a == 7 && b == 0);
	/* No such state. */
	CHECK(!SX(6, 0x08, '_', 'S', '6', '_', 0x12, 0x04, 0x02, 0x00, 0x00));
	CHECK(!SX(3));
}

static void aml_not_matching(void)
{
	u8 a, b;
	/* "_S3_" not after NameOp: a Scope or Method name, a string, or a NameOp too far back. */
	CHECK(!SX(3, 0x10, '_', 'S', '3', '_', 0x12, 0x04, 0x02, 0x01, 0x01));
	CHECK(!SX(3, 0x0D, '_', 'S', '3', '_', 0x12, 0x04, 0x02, 0x01, 0x01, 0x00));
	CHECK(!SX(3, 0x08, 0x00, '_', 'S', '3', '_', 0x12, 0x04, 0x02, 0x01, 0x01));
	CHECK(!SX(3, 0x08, 0x5C, 0x5C, '_', 'S', '3', '_', 0x12, 0x04, 0x02, 0x01, 0x01));
	/* Named, but not a package; a package of nothing; an element that is not a constant. */
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x0A, 0x04, 0x02, 0x01, 0x01));
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x02, 0x00));
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x06, 0x02, 0x0D, 'A', 0x00, 0x01));
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x04, 0x02, 0x01, 0x0F));
	/* Elements past their package's length, within the buffer and at its end. */
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x04, 0x02, 0x01, 0x0A, 0x05));
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x03, 0x02, 0x01, 0x01, 0x01));
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x03, 0x02, 0x01));
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x02, 0x02, 0x01, 0x01));
	/* A PkgLength shorter than itself and its count. */
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x41, 0x00, 0x01, 0x01));
	/* The first candidate is malformed: the search goes on to the next. */
	CHECK(SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x04, 0x02, 0x5B, 0x01, 0x08, '_', 'S', '3', '_', 0x12, 0x05, 0x02,
	    0x0A, 0x04, 0x00));
	CHECK(a == 4 && b == 0);
	/* Two good ones: the first wins. */
	CHECK(SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x04, 0x02, 0x01, 0x01, 0x08, '_', 'S', '3', '_', 0x12, 0x05, 0x02,
	    0x0A, 0x04, 0x00));
	CHECK(a == 1 && b == 1);
}

/* Every prefix of a good encoding that cuts its package short is refused, without a read past
 * its end (ASan), whatever the PkgLength encoding. */
static void aml_truncated(void)
{
	static const u8 one[] = { 0x08, 0x5C, '_', 'S', '3', '_', 0x12, 0x06, 0x04, 0x01, 0x0A, 0x03, 0x00 };
	static const u8 two[] = { 0x08, '_', 'S', '3', '_', 0x12, 0x4B, 0x00, 0x04, 0x0C, 1, 0, 0, 0, 0x0B, 2, 0 };
	static const u8 four[] = { 0x08, '_', 'S', '3', '_', 0x12, 0xC7, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01 };
	const struct {
		const u8 *p;
		u32 n;
	} cases[] = { { one, sizeof(one) }, { two, sizeof(two) }, { four, sizeof(four) } };
	for (unsigned c = 0; c < 3; c++) {
		u8 a, b;
		CHECK(sx(cases[c].p, cases[c].n, 3, &a, &b));
		for (u32 n = 0; n < cases[c].n; n++)
			CHECK(!sx(cases[c].p, n, 3, &a, &b));
	}
	/* A PkgLength claiming more than is there. */
	u8 a, b;
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x06, 0x04, 0x01, 0x01, 0x00));
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x01));
	CHECK(!SX(3, 0x08, '_', 'S', '3', '_', 0x12, 0x80, 0x00));
}

static void aml_qemu(void)
{
	u8 a, b;
	CHECK(sx(qemu_sx, sizeof(qemu_sx), 3, &a, &b));
	CHECK(a == 1 && b == 1);
	CHECK(sx(qemu_sx, sizeof(qemu_sx), 4, &a, &b));
	CHECK(a == 2 && b == 2);
	CHECK(sx(qemu_sx, sizeof(qemu_sx), 5, &a, &b));
	CHECK(a == 0 && b == 0);
	for (unsigned s = 0; s < 3; s++)
		CHECK(!sx(qemu_sx, sizeof(qemu_sx), s, &a, &b));
}

TESTS(acpi_pm_tests) = {
	{ "acpi_pm: full FADT, X_ blocks in I/O space win, DSDT \\_Sn", fadt_full },
	{ "acpi_pm: ACPI 1.0 FADT, fields past its length absent", fadt_acpi1 },
	{ "acpi_pm: X_PM1x_CNT_BLK in memory space", pm1_in_memory },
	{ "acpi_pm: bad checksum and wrong signature refused with a reason", fadt_refused },
	{ "acpi_pm: AML Name(\\_Sn, Package) encodings", aml_names },
	{ "acpi_pm: AML lookalikes and malformed packages ignored", aml_not_matching },
	{ "acpi_pm: AML truncated at the end of the buffer", aml_truncated },
	{ "acpi_pm: QEMU pc DSDT \\_S3/\\_S4/\\_S5", aml_qemu },
	{ NULL, NULL },
};
