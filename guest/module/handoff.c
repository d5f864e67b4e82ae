// SPDX-License-Identifier: GPL-2.0
/*
 * /proc/parapet/handoff (mode 0200): VMMCALL HANDOFF from ring 0, for tests of the preboot
 * handoff (the preboot app's own path is a kexec payload; this reaches the same call from a
 * live kernel, on whichever CPU the writer runs).
 *
 *   write RECORD bytes   the bytes are copied to physically contiguous pages and handed over
 *                        with their physical address and the write's length (at most 1 MiB)
 *   write "raw ADDR LEN" (hex) hands over an arbitrary physical range, e.g. Parapet's own
 *
 * A refusal is the write's error: EINVAL (bad length or record), EFAULT (bad address), EPERM
 * (not now, or not the boot CPU), ENOSYS (unknown to the hypervisor). An accepted handoff
 * does not return: Parapet boots the target OS.
 */
#include <linux/errno.h>
#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/uaccess.h>
#include <asm/io.h>

#include "parapet.h"

#define PARAPET_FN_HANDOFF 3
#define HANDOFF_MAX (1UL << 20)

static ssize_t handoff_error(unsigned long rax)
{
	switch ((long)rax) {
	case -2:
		return -EINVAL;
	case -3:
		return -EFAULT;
	case -4:
		return -EPERM;
	default:
		return -ENOSYS;
	}
}

static ssize_t parapet_handoff_write(struct file *f, const char __user *ubuf, size_t len, loff_t *off)
{
	struct parapet_regs r = { .rax = PARAPET_FN_HANDOFF };
	unsigned long addr, size;
	struct page *pages = NULL;
	unsigned int order = 0;
	char head[48];

	if (len == 0 || len > HANDOFF_MAX)
		return -EINVAL;
	if (len < sizeof(head) && !copy_from_user(head, ubuf, len)) {
		head[len] = 0;
		if (sscanf(head, "raw %lx %lx", &addr, &size) == 2) {
			r.rbx = addr;
			r.rcx = size;
			goto call;
		}
	}
	order = get_order(len);
	pages = alloc_pages(GFP_KERNEL | __GFP_ZERO, order);
	if (!pages)
		return -ENOMEM;
	if (copy_from_user(page_address(pages), ubuf, len)) {
		__free_pages(pages, order);
		return -EFAULT;
	}
	r.rbx = page_to_phys(pages);
	r.rcx = len;
call:
	pr_info("parapet_guest: handoff of %lu bytes at 0x%lx from cpu %d\n", r.rcx, r.rbx, raw_smp_processor_id());
	parapet_vmmcall(&r);
	if (pages) {
		memzero_explicit(page_address(pages), len);
		__free_pages(pages, order);
	}
	return r.rax == 0 ? (ssize_t)len : handoff_error(r.rax);
}

static const struct proc_ops parapet_handoff_ops = {
	.proc_write = parapet_handoff_write,
};

int parapet_handoff_init(struct proc_dir_entry *dir)
{
	return proc_create("handoff", 0200, dir, &parapet_handoff_ops) ? 0 : -ENOMEM;
}
