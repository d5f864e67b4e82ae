/* ACPI table lookup: see acpi.h. */
#include "io/acpi.h"
#include "core/string.h"

#define TABLE_MAX_LEN (1u << 20)
#define SDT_HEADER_LEN 36
#define TABLES_MAX 256

static u32 rd32(const u8 *p)
{
	u32 v;
	memcpy(&v, p, 4);
	return v;
}
static u64 rd64(const u8 *p)
{
	u64 v;
	memcpy(&v, p, 8);
	return v;
}

static bool sum_ok(const u8 *p, u32 len)
{
	u8 s = 0;
	for (u32 i = 0; i < len; i++)
		s = (u8)(s + p[i]);
	return s == 0;
}

static const u8 *rsdp_at(acpi_map_fn map, u64 pa)
{
	const u8 *p = map(pa, 20);
	if (!p || memcmp(p, "RSD PTR ", 8) || !sum_ok(p, 20))
		return NULL;
	if (p[15] >= 2) {
		const u8 *x = map(pa, 36);
		if (!x)
			return NULL;
		u32 len = rd32(x + 20);
		if (len < 36 || len > 4096 || !(x = map(pa, len)) || !sum_ok(x, len))
			return NULL;
		return x;
	}
	return p;
}

u64 acpi_find_rsdp(acpi_map_fn map)
{
	const u8 *bda = map(0x40E, 2);
	if (bda) {
		u64 ebda = (u64)(bda[0] | bda[1] << 8) << 4;
		if (ebda >= 0x500 && ebda + 1024 <= 0xA0000)
			for (u64 a = ebda; a < ebda + 1024; a += 16)
				if (rsdp_at(map, a))
					return a;
	}
	for (u64 a = 0xE0000; a < 0x100000; a += 16)
		if (rsdp_at(map, a))
			return a;
	return 0;
}

/* A whole table with a valid header, length and checksum, or NULL. */
static const u8 *table_at(acpi_map_fn map, u64 pa, u32 *len)
{
	const u8 *h = pa ? map(pa, SDT_HEADER_LEN) : NULL;
	if (!h)
		return NULL;
	u32 l = rd32(h + 4);
	if (l < SDT_HEADER_LEN || l > TABLE_MAX_LEN)
		return NULL;
	const u8 *t = map(pa, l);
	if (!t || !sum_ok(t, l))
		return NULL;
	*len = l;
	return t;
}

const u8 *acpi_table(acpi_map_fn map, u64 pa, u32 *len)
{
	return table_at(map, pa, len);
}

/* The root table (XSDT, or RSDT when there is none) the RSDP names; *esz = its entry size. */
static const u8 *root_table(acpi_map_fn map, u64 rsdp, u32 *len, unsigned *esz)
{
	const u8 *r = rsdp ? rsdp_at(map, rsdp) : NULL;
	if (!r)
		return NULL;
	bool x = r[15] >= 2 && rd64(r + 24);
	const u8 *t = table_at(map, x ? rd64(r + 24) : rd32(r + 16), len);
	*esz = x ? 8 : 4;
	return t && !memcmp(t, x ? "XSDT" : "RSDT", 4) ? t : NULL;
}

static u64 entry_at(const u8 *t, unsigned esz, unsigned i)
{
	const u8 *e = t + SDT_HEADER_LEN + i * esz;
	return esz == 8 ? rd64(e) : rd32(e);
}

static bool has_sig(acpi_map_fn map, u64 pa, const char sig[4])
{
	u32 l;
	const u8 *c = table_at(map, pa, &l);
	return c && !memcmp(c, sig, 4);
}

u64 acpi_find_table(acpi_map_fn map, u64 rsdp, const char sig[4])
{
	u32 len;
	unsigned esz;
	const u8 *t = root_table(map, rsdp, &len, &esz);
	if (!t)
		return 0;
	unsigned n = (len - SDT_HEADER_LEN) / esz;
	for (unsigned i = 0; i < n && i < TABLES_MAX; i++)
		if (has_sig(map, entry_at(t, esz, i), sig))
			return entry_at(t, esz, i);
	return 0;
}

u64 acpi_first_entry(acpi_map_fn map, u64 rsdp, bool xsdt, const char sig[4], bool *valid)
{
	const u8 *r = rsdp ? rsdp_at(map, rsdp) : NULL;
	u64 pa = !r ? 0 : xsdt ? (r[15] >= 2 ? rd64(r + 24) : 0) : rd32(r + 16);
	u32 len;
	const u8 *t = pa ? table_at(map, pa, &len) : NULL;
	*valid = !pa || (t && !memcmp(t, xsdt ? "XSDT" : "RSDT", 4));
	if (!t || !*valid)
		return 0;
	unsigned esz = xsdt ? 8 : 4, n = (len - SDT_HEADER_LEN) / esz;
	for (unsigned i = 0; i < n && i < TABLES_MAX; i++) {
		u64 e = entry_at(t, esz, i);
		const u8 *h = e ? map(e, 4) : NULL;
		if (h && !memcmp(h, sig, 4))
			return e;
	}
	return 0;
}

static unsigned unlist_in(acpi_map_fn map, u64 pa, const char root_sig[4], unsigned esz, const char sig[4])
{
	u32 len;
	u8 *t = (u8 *)table_at(map, pa, &len);
	if (!t || memcmp(t, root_sig, 4))
		return 0;
	unsigned n = (len - SDT_HEADER_LEN) / esz, kept = 0;
	for (unsigned i = 0; i < n; i++) {
		u64 e = entry_at(t, esz, i);
		if (i < TABLES_MAX && has_sig(map, e, sig))
			continue;
		memmove(t + SDT_HEADER_LEN + kept * esz, t + SDT_HEADER_LEN + i * esz, esz);
		kept++;
	}
	if (kept == n)
		return 0;
	u32 nlen = SDT_HEADER_LEN + kept * esz;
	memset(t + nlen, 0, len - nlen);
	memcpy(t + 4, &nlen, 4);
	t[9] = 0;
	u8 sum = 0;
	for (u32 i = 0; i < nlen; i++)
		sum = (u8)(sum + t[i]);
	t[9] = (u8)-sum; /* the checksum byte */
	return n - kept;
}

unsigned acpi_unlist(acpi_map_fn map, u64 rsdp, const char sig[4])
{
	const u8 *r = rsdp ? rsdp_at(map, rsdp) : NULL;
	if (!r)
		return 0;
	unsigned n = unlist_in(map, rd32(r + 16), "RSDT", 4, sig);
	if (r[15] >= 2 && rd64(r + 24))
		n += unlist_in(map, rd64(r + 24), "XSDT", 8, sig);
	return n;
}

bool acpi_mcfg_segment0(acpi_map_fn map, u64 mcfg, struct mcfg_window *out)
{
	u32 len;
	const u8 *t = table_at(map, mcfg, &len);
	if (!t || memcmp(t, "MCFG", 4) || len < 44)
		return false;
	for (u32 off = 44; off + 16 <= len; off += 16) {
		const u8 *e = t + off;
		u16 seg = (u16)(e[8] | e[9] << 8);
		if (seg != 0 || e[10] > e[11] || (rd64(e) & 0xFFFFF))
			continue;
		*out = (struct mcfg_window){ rd64(e), seg, e[10], e[11] };
		return true;
	}
	return false;
}

#define MADT_LOCAL_APIC 0
#define MADT_LOCAL_X2APIC 9
#define MADT_ENABLED (1u << 0)

#define MADT_IO_APIC 1

/* The MADT's interrupt controller structures, each checked to lie within the table; a
 * malformed one ends the walk with what was sound before it. NULL at the end. */
static const u8 *madt_next(const u8 *t, u32 len, u32 *off)
{
	if (*off + 2 > len)
		return NULL;
	const u8 *e = t + *off;
	if (e[1] < 2 || *off + e[1] > len)
		return NULL;
	*off += e[1];
	return e;
}

static const u8 *madt_table(acpi_map_fn map, u64 madt, u32 *len)
{
	const u8 *t = table_at(map, madt, len);
	return t && !memcmp(t, "APIC", 4) && *len >= 44 ? t : NULL;
}

unsigned acpi_madt_cpus(acpi_map_fn map, u64 madt, u32 *ids, unsigned max)
{
	u32 len, off = 44;
	const u8 *t = madt_table(map, madt, &len), *e;
	unsigned n = 0;
	while (t && n < max && (e = madt_next(t, len, &off))) {
		u32 id, flags;
		if (e[0] == MADT_LOCAL_APIC && e[1] >= 8) {
			id = e[3];
			flags = rd32(e + 4);
		} else if (e[0] == MADT_LOCAL_X2APIC && e[1] >= 16) {
			id = rd32(e + 4);
			flags = rd32(e + 8);
		} else {
			continue;
		}
		if (!(flags & MADT_ENABLED))
			continue;
		bool dup = false;
		for (unsigned i = 0; i < n; i++)
			dup |= ids[i] == id;
		if (!dup)
			ids[n++] = id;
	}
	return n;
}

unsigned acpi_madt_ioapics(acpi_map_fn map, u64 madt, u64 *bases, unsigned max)
{
	u32 len, off = 44;
	const u8 *t = madt_table(map, madt, &len), *e;
	unsigned n = 0;
	while (t && n < max && (e = madt_next(t, len, &off)))
		if (e[0] == MADT_IO_APIC && e[1] >= 12 && !(rd32(e + 4) & 0xFFF))
			bases[n++] = rd32(e + 4);
	return n;
}
