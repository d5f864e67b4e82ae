/* DMAR parsing: see dmar.h. */
#include "iommu/dmar.h"
#include "core/string.h"

static u16 rd16(const u8 *p)
{
	u16 v;
	memcpy(&v, p, 2);
	return v;
}
static u64 rd64(const u8 *p)
{
	u64 v;
	memcpy(&v, p, 8);
	return v;
}

static const char *parse(const u8 *t, u32 len, struct dmar_info *out)
{
	if (len < DMAR_HEADER_LEN || memcmp(t, "DMAR", 4))
		return "not a DMAR table";
	out->haw = t[36];
	out->flags = t[37];
	for (u32 off = DMAR_HEADER_LEN; off < len;) {
		if (len - off < 4)
			return "truncated remapping structure";
		const u8 *s = t + off;
		u16 type = rd16(s), slen = rd16(s + 2);
		if (slen < 4 || slen > len - off)
			return "remapping structure length out of bounds";
		off += slen;
		if (type == DMAR_TYPE_DRHD) {
			if (slen < 16)
				return "DRHD shorter than 16 bytes";
			if (out->nunits == IOMMU_UNITS_MAX)
				return "more remapping units than Parapet handles";
			u64 base = rd64(s + 8);
			if (!base || (base & 0xFFF) || (s[5] & 0xF0))
				return "DRHD register base or size invalid";
			out->units[out->nunits++] = (typeof(out->units[0])){ .base = base,
				.len = 4096ull << (s[5] & 0xF),
				.segment = rd16(s + 6),
				.flags = s[4] };
		} else if (type == DMAR_TYPE_RMRR) {
			if (slen < 24)
				return "RMRR shorter than 24 bytes";
			if (out->nrmrr == IOMMU_FIXED_MAX)
				return "more reserved memory regions than Parapet handles";
			u64 base = rd64(s + 8), limit = rd64(s + 16);
			if ((base & 0xFFF) || (~limit & 0xFFF) || limit < base || limit == ~0ull)
				return "RMRR range invalid";
			out->rmrr[out->nrmrr].base = base;
			out->rmrr[out->nrmrr++].end = limit + 1;
		}
		/* ATSR, RHSA, ANDD, SATC, SIDP: nothing Parapet needs. */
	}
	if (!out->nunits)
		return "no remapping unit";
	return NULL;
}

const char *dmar_parse(const u8 *t, u32 len, struct dmar_info *out)
{
	memset(out, 0, sizeof(*out));
	const char *err = parse(t, len, out);
	if (err)
		memset(out, 0, sizeof(*out));
	return err;
}
