/* The x86 Linux boot protocol, 32-bit entry: see linux.h. Pure: the image and the zero page
 * are byte buffers, so the host unit tests run it. */
#include "guest/linux.h"
#include "core/string.h"

static u32 rd(const u8 *p, unsigned off, unsigned size)
{
	u32 v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (u32)p[off + i] << (8 * i);
	return v;
}

static void wr(u8 *p, unsigned off, unsigned size, u64 v)
{
	for (unsigned i = 0; i < size; i++)
		p[off + i] = (u8)(v >> (8 * i));
}

bool linux_is_bzimage(const u8 *img, u64 len)
{
	return len >= LX_INIT_SIZE + 4 && rd(img, LX_BOOT_FLAG, 2) == 0xAA55 && rd(img, LX_HEADER, 4) == LX_HDRS_MAGIC;
}

const char *linux_parse(const u8 *img, u64 len, struct linux_image *out)
{
	memset(out, 0, sizeof(*out));
	if (!linux_is_bzimage(img, len))
		return "not a Linux bzImage (no boot flag or \"HdrS\" setup header)";
	if (rd(img, LX_VERSION, 2) < LX_MIN_VERSION)
		return "boot protocol older than 2.10";
	u64 hdr_end = LX_HEADER + rd(img, LX_JUMP + 1, 1);
	if (hdr_end > LX_HDR_END_MAX || hdr_end > len)
		return "setup header longer than boot_params holds";
	if (!(rd(img, LX_LOADFLAGS, 1) & LX_LOADED_HIGH))
		return "not a bzImage (protected-mode code not loaded high)";
	if (!rd(img, LX_RELOCATABLE, 1))
		return "kernel is not relocatable";
	u32 sects = rd(img, LX_SETUP_SECTS, 1);
	out->setup_bytes = (u64)((sects ? sects : 4) + 1) * 512;
	if (out->setup_bytes >= len)
		return "setup sectors run past the end of the file";
	out->code_bytes = len - out->setup_bytes;
	out->init_size = rd(img, LX_INIT_SIZE, 4);
	if (out->init_size < out->code_bytes)
		return "init_size is smaller than the kernel itself";
	out->align = rd(img, LX_KERNEL_ALIGNMENT, 4);
	if (out->align < PAGE_SIZE || (out->align & (out->align - 1)) || out->align > MiB(1024))
		return "kernel_alignment is not a power of two between 4 KiB and 1 GiB";
	out->initrd_max = (u64)rd(img, LX_INITRD_ADDR_MAX, 4) + 1;
	out->cmdline_max = rd(img, LX_CMDLINE_SIZE, 4);
	return NULL;
}

const char *linux_zero_page(u8 *zp, const u8 *img, const struct linux_image *li, const struct memmap *m, u64 load,
    u64 cmdline_pa, u64 initrd_pa, u64 initrd_len)
{
	if (m->n > LX_E820_MAX)
		return "memory map has more entries than the zero page holds";
	if (load & (li->align - 1) || load + li->init_size > GiB(4))
		return "load address misaligned or above 4 GiB";
	if (initrd_len > 0xFFFFFFFFu || initrd_pa + initrd_len > li->initrd_max)
		return "initrd lies above the kernel's initrd_addr_max";
	if (cmdline_pa >= GiB(4))
		return "command line above 4 GiB";
	memset(zp, 0, LX_ZERO_PAGE_SIZE);
	unsigned hdr_end = LX_HEADER + rd(img, LX_JUMP + 1, 1);
	memcpy(zp + LX_SETUP_SECTS, img + LX_SETUP_SECTS, hdr_end - LX_SETUP_SECTS);
	wr(zp, LX_TYPE_OF_LOADER, 1, 0xFF);
	wr(zp, LX_CODE32_START, 4, load);
	wr(zp, LX_RAMDISK_IMAGE, 4, initrd_len ? initrd_pa : 0);
	wr(zp, LX_RAMDISK_SIZE, 4, initrd_len);
	wr(zp, LX_CMD_LINE_PTR, 4, cmdline_pa);
	wr(zp, LX_E820_ENTRIES, 1, m->n);
	for (u32 i = 0; i < m->n; i++) {
		unsigned off = LX_E820_TABLE + 20 * i;
		wr(zp, off, 4, m->e[i].base);
		wr(zp, off + 4, 4, m->e[i].base >> 32);
		wr(zp, off + 8, 4, m->e[i].len);
		wr(zp, off + 12, 4, m->e[i].len >> 32);
		wr(zp, off + 16, 4, m->e[i].type);
	}
	return NULL;
}
