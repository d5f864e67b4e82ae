/* IVRS parsing: see ivrs.h. */
#include "iommu/ivrs.h"
#include "core/string.h"

/* Which IVHD type describes an IOMMU best; 0 for types Parapet does not read. */
static unsigned rank(u8 type)
{
	return type == IVHD_TYPE_10 ? 1 : type == IVHD_TYPE_11 ? 2 : type == IVHD_TYPE_40 ? 3 : 0;
}

static const char *ivhd(const u8 *s, u16 slen, struct ivrs_info *out)
{
	struct ivhd_header h = { 0 };
	if (slen < (s[0] == IVHD_TYPE_10 ? IVHD_LEN_10 : sizeof(h)))
		return "IVHD block shorter than its header";
	memcpy(&h, s, s[0] == IVHD_TYPE_10 ? IVHD_LEN_10 : sizeof(h));
	if (!h.base || (h.base & 0x3FFF))
		return "IVHD register base not 16 KiB aligned";
	/* The same IOMMU (its own device ID in its segment) again, as another type: keep the best. */
	unsigned i = 0;
	while (i < out->nunits && (out->units[i].devid != h.devid || out->units[i].segment != h.segment))
		i++;
	if (i < out->nunits && rank(h.type) <= rank(out->units[i].type))
		return NULL;
	for (unsigned j = 0; j < out->nunits; j++)
		if (j != i && out->units[j].base == h.base)
			return "two IOMMUs at one register base";
	if (i == IOMMU_UNITS_MAX)
		return "more IOMMUs than Parapet handles";
	out->units[i].base = h.base;
	out->units[i].devid = h.devid;
	out->units[i].segment = h.segment;
	out->units[i].type = h.type;
	out->nunits += i == out->nunits;
	return NULL;
}

static const char *ivmd(const u8 *s, u16 slen, struct ivrs_info *out)
{
	struct ivmd m;
	if (slen < sizeof(m))
		return "IVMD block shorter than 32 bytes";
	memcpy(&m, s, sizeof(m));
	if (!(m.flags & (IVMD_UNITY | IVMD_EXCLUSION)))
		return NULL; /* asks for nothing */
	if (!m.len || m.start + m.len < m.start || m.start + m.len > ~0xFFFull)
		return "IVMD range invalid";
	if (out->nfixed == IOMMU_FIXED_MAX)
		return "more IVMD ranges than Parapet handles";
	out->fixed[out->nfixed].base = ALIGN_DOWN(m.start, PAGE_SIZE);
	out->fixed[out->nfixed++].end = ALIGN_UP(m.start + m.len, PAGE_SIZE);
	return NULL;
}

const char *ivrs_parse(const u8 *t, u32 len, struct ivrs_info *out)
{
	memset(out, 0, sizeof(*out));
	if (len < IVRS_HEADER_LEN || memcmp(t, "IVRS", 4))
		return "not an IVRS table";
	memcpy(&out->ivinfo, t + 36, 4);
	for (u32 off = IVRS_HEADER_LEN; off < len;) {
		if (len - off < 4)
			return "truncated IVRS block";
		const u8 *s = t + off;
		u16 slen;
		memcpy(&slen, s + 2, 2);
		if (slen < 4 || slen > len - off)
			return "IVRS block length out of bounds";
		off += slen;
		const char *err = NULL;
		if (rank(s[0]))
			err = ivhd(s, slen, out);
		else if (s[0] == IVMD_TYPE_ALL || s[0] == IVMD_TYPE_ONE || s[0] == IVMD_TYPE_RANGE)
			err = ivmd(s, slen, out);
		/* Other types (a later IVHD format, vendor blocks): skipped by their length. */
		if (err)
			return err;
	}
	if (!out->nunits)
		return "no IOMMU (IVHD) block";
	return NULL;
}
