#include "boot/bootinfo.h"
#include "core/string.h"

/* Multiboot 1 information structure (fields used here). */
struct mb1_info {
	u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	u32 syms[4];
	u32 mmap_length, mmap_addr;
} __packed;
#define MB1_INFO_CMDLINE (1u << 2)
#define MB1_INFO_MODS (1u << 3)
#define MB1_INFO_MMAP (1u << 6)

struct mb1_module {
	u32 start, end, string, reserved;
} __packed;
struct mb_mmap_entry {
	u64 base, len;
	u32 type;
} __packed;

/* Multiboot2 tags. */
#define MB2_TAG_END 0
#define MB2_TAG_CMDLINE 1
#define MB2_TAG_MODULE 3
#define MB2_TAG_MMAP 6
struct mb2_tag {
	u32 type, size;
} __packed;

#define MBI_MAX_SIZE (64 * 1024)

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static const char *add_module(struct boot_info *bi, u64 start, u64 end, const char *s)
{
	if (bi->nmods >= BOOT_MODS_MAX)
		return "too many boot modules";
	if (end < start)
		return "boot module ends before it starts";
	struct boot_module *m = &bi->mods[bi->nmods++];
	m->start = start;
	m->end = end;
	copy_str(m->string, sizeof(m->string), s ? s : "");
	return NULL;
}

static const char *parse_mb1(u64 mbi, const void *(*ptr)(u64), struct boot_info *bi)
{
	const struct mb1_info *info = ptr(mbi);
	bi->mbi = (struct range){ mbi, mbi + sizeof(*info) };
	if (info->flags & MB1_INFO_CMDLINE)
		copy_str(bi->cmdline, sizeof(bi->cmdline), ptr(info->cmdline));
	if (info->flags & MB1_INFO_MODS) {
		if (info->mods_count > BOOT_MODS_MAX)
			return "too many boot modules";
		const struct mb1_module *mods = ptr(info->mods_addr);
		for (u32 i = 0; i < info->mods_count; i++) {
			const char *err = add_module(bi, mods[i].start, mods[i].end,
			    mods[i].string ? ptr(mods[i].string) : "");
			if (err)
				return err;
		}
	}
	if (!(info->flags & MB1_INFO_MMAP))
		return "the boot loader gave no memory map";
	u64 p = info->mmap_addr, end = p + info->mmap_length;
	for (unsigned guard = 0; p + 4 <= end && guard < 1024; guard++) {
		u32 size = *(const u32 *)ptr(p);
		if (size < sizeof(struct mb_mmap_entry) || p + 4 + size > end)
			return "malformed multiboot memory map entry";
		const struct mb_mmap_entry *e = ptr(p + 4);
		if (!memmap_add(&bi->map, e->base, e->len, e->type))
			return "memory map has too many entries";
		p += 4 + size;
	}
	return NULL;
}

static const char *parse_mb2(u64 mbi, const void *(*ptr)(u64), struct boot_info *bi)
{
	u32 total = *(const u32 *)ptr(mbi);
	if (total < 16 || total > MBI_MAX_SIZE)
		return "multiboot2 information has an implausible size";
	bi->mbi = (struct range){ mbi, mbi + total };
	bool have_map = false;
	for (u64 p = mbi + 8; p + sizeof(struct mb2_tag) <= mbi + total;) {
		const struct mb2_tag *t = ptr(p);
		if (t->type == MB2_TAG_END)
			break;
		if (t->size < sizeof(*t) || p + t->size > mbi + total)
			return "malformed multiboot2 tag";
		const u8 *body = (const u8 *)t + sizeof(*t);
		u32 blen = t->size - sizeof(*t);
		switch (t->type) {
		case MB2_TAG_CMDLINE:
			copy_str(bi->cmdline, blen + 1 < sizeof(bi->cmdline) ? blen + 1 : sizeof(bi->cmdline),
			    (const char *)body);
			break;
		case MB2_TAG_MODULE: {
			if (blen < 8)
				return "malformed multiboot2 module tag";
			const u32 *w = (const u32 *)body;
			const char *err = add_module(bi, w[0], w[1], blen > 8 ? (const char *)(w + 2) : "");
			if (err)
				return err;
			break;
		}
		case MB2_TAG_MMAP: {
			if (blen < 8)
				return "malformed multiboot2 memory map tag";
			u32 esize = ((const u32 *)body)[0];
			if (esize < sizeof(struct mb_mmap_entry))
				return "malformed multiboot2 memory map tag";
			for (u32 off = 8; off + esize <= blen; off += esize) {
				const struct mb_mmap_entry *e = (const void *)(body + off);
				if (!memmap_add(&bi->map, e->base, e->len, e->type))
					return "memory map has too many entries";
			}
			have_map = true;
			break;
		}
		}
		p += ALIGN_UP((u64)t->size, 8);
	}
	if (!have_map)
		return "the boot loader gave no memory map";
	return NULL;
}

const char *bootinfo_parse(u32 magic, u64 mbi, const void *(*ptr)(u64 pa), struct boot_info *bi)
{
	memset(bi, 0, sizeof(*bi));
	bi->magic = magic;
	const char *err;
	if (magic == MB1_BOOT_MAGIC)
		err = parse_mb1(mbi, ptr, bi);
	else if (magic == MB2_BOOT_MAGIC)
		err = parse_mb2(mbi, ptr, bi);
	else
		return "not started by a multiboot loader";
	if (!err)
		memmap_sort(&bi->map);
	return err;
}
