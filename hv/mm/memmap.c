#include "mm/memmap.h"
#include "core/string.h"

bool memmap_add(struct memmap *m, u64 base, u64 len, u32 type)
{
	if (len == 0)
		return true;
	if (m->n >= MEMMAP_MAX)
		return false;
	m->e[m->n++] = (struct memmap_entry){ base, len, type };
	return true;
}

void memmap_sort(struct memmap *m)
{
	for (u32 i = 1; i < m->n; i++) {
		struct memmap_entry x = m->e[i];
		u32 j = i;
		while (j > 0 && m->e[j - 1].base > x.base) {
			m->e[j] = m->e[j - 1];
			j--;
		}
		m->e[j] = x;
	}
}

bool memmap_carve(struct memmap *m, u64 base, u64 len, u32 type)
{
	u64 end = base + len;
	u32 n = m->n;
	for (u32 i = 0; i < n; i++) {
		struct memmap_entry *e = &m->e[i];
		u64 eb = e->base, ee = e->base + e->len;
		if (e->type != E820_RAM || ee <= base || eb >= end)
			continue;
		u64 cb = eb > base ? eb : base;
		u64 ce = ee < end ? ee : end;
		/* Keep the part before in place; append the carved part and the part after. */
		if (cb > eb) {
			e->len = cb - eb;
			if (!memmap_add(m, cb, ce - cb, type))
				return false;
		} else {
			e->len = ce - cb;
			e->type = type;
		}
		if (ce < ee && !memmap_add(m, ce, ee - ce, E820_RAM))
			return false;
	}
	memmap_sort(m);
	return true;
}

static const struct range *overlap(u64 b, u64 e, const struct range *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (x[i].base < e && b < x[i].end)
			return &x[i];
	return NULL;
}

bool memmap_find_top(const struct memmap *m, u64 size, u64 align, u64 limit, const struct range *excl, unsigned nexcl,
    u64 *out)
{
	bool found = false;
	u64 best = 0;
	for (u32 i = 0; i < m->n; i++) {
		const struct memmap_entry *e = &m->e[i];
		if (e->type != E820_RAM)
			continue;
		u64 top = e->base + e->len;
		if (top > limit)
			top = limit;
		for (;;) {
			top = ALIGN_DOWN(top, align);
			if (top < e->base + size || top < size)
				break;
			u64 b = top - size;
			if (b < e->base)
				break;
			const struct range *x = overlap(b, top, excl, nexcl);
			if (!x) {
				if (!found || b > best)
					best = b;
				found = true;
				break;
			}
			top = x->base;
		}
	}
	if (found)
		*out = best;
	return found;
}

/* End of the contiguous RAM (any_type: of entries of any type) that starts at `from` (== from
 * when nothing starts there). */
static u64 contiguous(const struct memmap *m, u64 from, u64 limit, bool any_type)
{
	u64 p = from;
	for (u32 pass = 0; pass <= m->n && p < limit; pass++) {
		bool moved = false;
		for (u32 i = 0; i < m->n; i++) {
			const struct memmap_entry *e = &m->e[i];
			if ((any_type || e->type == E820_RAM) && e->base <= p && p < e->base + e->len) {
				p = e->base + e->len;
				moved = true;
			}
		}
		if (!moved)
			break;
	}
	return p < limit ? p : limit;
}

bool memmap_is_ram(const struct memmap *m, u64 base, u64 len)
{
	if (len == 0 || base + len < base)
		return false;
	return contiguous(m, base, base + len, false) == base + len;
}

bool memmap_covers(const struct memmap *m, u64 base, u64 len)
{
	if (len == 0 || base + len < base)
		return false;
	return contiguous(m, base, base + len, true) == base + len;
}

void memmap_legacy_sizes(const struct memmap *m, u16 *e801_kb, u16 *e801_blocks, u16 *ext_kb)
{
	u64 low_end = contiguous(m, MiB(1), MiB(16), false);
	*e801_kb = (u16)((low_end - MiB(1)) >> 10);
	u64 high_end = low_end == MiB(16) ? contiguous(m, MiB(16), GiB(4), false) : MiB(16);
	*e801_blocks = (u16)((high_end - MiB(16)) >> 16);
	u64 ext = (contiguous(m, MiB(1), GiB(4), false) - MiB(1)) >> 10;
	*ext_kb = ext > 0xFFFF ? 0xFFFF : (u16)ext;
}
