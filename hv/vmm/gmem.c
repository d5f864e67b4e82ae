#include "vmm/gmem.h"
#include "core/string.h"

static const struct memmap *map;
static u64 fw_limit, hidden_base, hidden_end;

#define VGA_BASE 0xA0000ull
#define VGA_END 0xC0000ull

void gmem_init(const struct memmap *guest_map)
{
	map = guest_map;
}

void *gmem_map(u64 gpa, u64 len)
{
	if (!map || !memmap_is_ram(map, gpa, len))
		return NULL;
	return (void *)(uintptr_t)gpa;
}

void gmem_set_firmware(u64 limit, u64 base, u64 end)
{
	fw_limit = limit;
	hidden_base = base;
	hidden_end = end;
}

void *gmem_map_dma(u64 gpa, u64 len)
{
	if (gmem_map(gpa, len))
		return (void *)(uintptr_t)gpa;
	u64 end = gpa + len;
	if (!map || len == 0 || end < gpa || end > fw_limit)
		return NULL;
	if ((gpa < hidden_end && hidden_base < end) || (gpa < VGA_END && VGA_BASE < end) ||
	    !memmap_covers(map, gpa, len))
		return NULL;
	return (void *)(uintptr_t)gpa;
}

bool gmem_sg_copy(const struct gmem_sg *sg, unsigned n, u64 off, u8 *buf, u64 len, bool to_guest,
    void *(*map)(u64 gpa, u64 len))
{
	for (unsigned i = 0; i < n && len; i++) {
		if (off >= sg[i].len) {
			off -= sg[i].len;
			continue;
		}
		u64 k = sg[i].len - off < len ? sg[i].len - off : len;
		u8 *g = map(sg[i].addr + off, k);
		if (!g)
			return false;
		if (to_guest)
			memcpy(g, buf, k);
		else
			memcpy(buf, g, k);
		buf += k;
		len -= k;
		off = 0;
	}
	return len == 0;
}
