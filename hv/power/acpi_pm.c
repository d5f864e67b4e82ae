/* ACPI power management tables (FADT, DSDT \_Sn packages): see acpi_pm.h. */
#include "power/acpi_pm.h"
#include "core/fmt.h"
#include "core/string.h"

#define SDT_HEADER_LEN 36

/* FADT field offsets (ACPI 6.5 §5.2.9 table 5.9). */
#define FADT_FIRMWARE_CTRL 36
#define FADT_DSDT 40
#define FADT_PM1A_EVT_BLK 56
#define FADT_PM1B_EVT_BLK 60
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM1B_CNT_BLK 68
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_X_FIRMWARE_CTRL 132
#define FADT_X_DSDT 140
#define FADT_X_PM1A_EVT_BLK 148
#define FADT_X_PM1B_EVT_BLK 160
#define FADT_X_PM1A_CNT_BLK 172
#define FADT_X_PM1B_CNT_BLK 184
#define FADT_SLEEP_CONTROL 244
#define FADT_SLEEP_STATUS 256
#define GAS_LEN 12

/* AML opcodes (§20.2). */
#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME 0x08
#define AML_BYTE 0x0A
#define AML_WORD 0x0B
#define AML_DWORD 0x0C
#define AML_QWORD 0x0E
#define AML_PACKAGE 0x12
#define AML_ROOT 0x5C
#define AML_ONES 0xFF

/* A little-endian field of `size` bytes at off, or 0 when the table is too short for it. */
static u64 field(const u8 *t, u32 len, u32 off, unsigned size)
{
	u64 v = 0;
	if (off + size <= len)
		memcpy(&v, t + off, size);
	return v;
}

static struct acpi_gas gas(const u8 *t, u32 len, u32 off)
{
	struct acpi_gas g = { 0 };
	if (off + GAS_LEN <= len)
		g = (struct acpi_gas){ t[off], t[off + 1], t[off + 2], t[off + 3], field(t, len, off + 4, 8) };
	return g;
}

/* A PM1 block's port: the X_ GAS when it is in I/O space and set, else the 32-bit field; 0 when
 * absent or not a port. */
static u16 pm1_port(const u8 *t, u32 len, u32 off, u32 xoff)
{
	struct acpi_gas g = gas(t, len, xoff);
	u64 p = g.space == GAS_SPACE_IO && g.addr ? g.addr : field(t, len, off, 4);
	return p <= 0xFFFF ? (u16)p : 0;
}

static bool cnt_in_memory(const u8 *t, u32 len, u32 xoff)
{
	struct acpi_gas g = gas(t, len, xoff);
	return g.space == GAS_SPACE_MEMORY && g.addr;
}

bool acpi_pm_read(acpi_map_fn map, u64 fadt, struct acpi_pm *pm, char *why, unsigned n)
{
	memset(pm, 0, sizeof(*pm));
	pm->fadt = fadt;
	u32 len;
	const u8 *t = acpi_table(map, fadt, &len);
	if (!t) {
		fmt_snprintf(why, n, "no valid table at 0x%lx (header, length or checksum)", fadt);
		return false;
	}
	if (memcmp(t, "FACP", 4)) {
		fmt_snprintf(why, n, "table at 0x%lx is %.*s, not FACP", fadt, 4, (const char *)t);
		return false;
	}
	pm->flags = (u32)field(t, len, FADT_FLAGS, 4);
	pm->facs32 = field(t, len, FADT_FIRMWARE_CTRL, 4);
	pm->facs64 = field(t, len, FADT_X_FIRMWARE_CTRL, 8);
	pm->facs = pm->facs64 ? pm->facs64 : pm->facs32;
	pm->dsdt = field(t, len, FADT_X_DSDT, 8);
	if (!pm->dsdt)
		pm->dsdt = field(t, len, FADT_DSDT, 4);
	pm->pm1a_evt = pm1_port(t, len, FADT_PM1A_EVT_BLK, FADT_X_PM1A_EVT_BLK);
	pm->pm1b_evt = pm1_port(t, len, FADT_PM1B_EVT_BLK, FADT_X_PM1B_EVT_BLK);
	pm->pm1a_cnt = pm1_port(t, len, FADT_PM1A_CNT_BLK, FADT_X_PM1A_CNT_BLK);
	pm->pm1b_cnt = pm1_port(t, len, FADT_PM1B_CNT_BLK, FADT_X_PM1B_CNT_BLK);
	pm->pm1_in_memory = cnt_in_memory(t, len, FADT_X_PM1A_CNT_BLK) || cnt_in_memory(t, len, FADT_X_PM1B_CNT_BLK);
	pm->reset_reg = gas(t, len, FADT_RESET_REG);
	pm->reset_value = (u8)field(t, len, FADT_RESET_VALUE, 1);
	pm->has_reset_reg = (pm->flags & FADT_RESET_REG_SUP) && len > FADT_RESET_VALUE;
	pm->sleep_cnt = gas(t, len, FADT_SLEEP_CONTROL);
	pm->sleep_sts = gas(t, len, FADT_SLEEP_STATUS);

	u32 dlen;
	const u8 *d = acpi_table(map, pm->dsdt, &dlen);
	if (d && !memcmp(d, "DSDT", 4))
		for (unsigned s = 0; s < 6; s++)
			pm->sx_present[s] = aml_sleep_type(d + SDT_HEADER_LEN, dlen - SDT_HEADER_LEN, s,
			    &pm->slp_typa[s], &pm->slp_typb[s]);
	return true;
}

/* The package element at p[*off], a constant: its low byte (all a SLP_TYP value needs). */
static bool aml_const(const u8 *p, u32 len, u32 *off, u8 *v)
{
	if (*off >= len)
		return false;
	u8 op = p[(*off)++];
	if (op == AML_ZERO || op == AML_ONE || op == AML_ONES) {
		*v = op;
		return true;
	}
	u32 size = op == AML_BYTE ? 1 : op == AML_WORD ? 2 : op == AML_DWORD ? 4 : op == AML_QWORD ? 8 : 0;
	if (!size || size > len - *off)
		return false;
	*v = p[*off];
	*off += size;
	return true;
}

/* PkgLength NumElements Element... at p (after PackageOp), within p[0, len): the first two
 * elements. The package may not run past len; an element outside it (or a count outside a
 * PkgLength too short to hold one) fails in aml_const. */
static bool sleep_package(const u8 *p, u32 len, u8 *typa, u8 *typb)
{
	if (len < 1)
		return false;
	unsigned extra = p[0] >> 6;
	u32 plen = extra ? p[0] & 0x0F : p[0] & 0x3F, off = 1 + extra;
	if (len < off + 1)
		return false;
	for (unsigned i = 0; i < extra; i++)
		plen |= (u32)p[1 + i] << (4 + 8 * i);
	if (plen > len || p[off] == 0)
		return false;
	unsigned count = p[off++];
	u8 v[2] = { 0, 0 };
	for (unsigned i = 0; i < 2 && i < count; i++)
		if (!aml_const(p, plen, &off, &v[i]))
			return false;
	*typa = v[0] & 7;
	*typb = v[1] & 7;
	return true;
}

bool aml_sleep_type(const u8 *aml, u32 len, unsigned n, u8 *typa, u8 *typb)
{
	if (n > 5)
		return false;
	const u8 name[4] = { '_', 'S', (u8)('0' + n), '_' };
	for (u32 i = 0; i + 1 < len; i++) {
		if (aml[i] != AML_NAME)
			continue;
		u32 p = i + 1 + (aml[i + 1] == AML_ROOT); /* p <= len */
		if (len - p < 5 || memcmp(aml + p, name, 4) || aml[p + 4] != AML_PACKAGE)
			continue;
		if (sleep_package(aml + p + 5, len - p - 5, typa, typb))
			return true;
	}
	return false;
}
