// SPDX-License-Identifier: GPL-2.0
/*
 * parapet_guest: /proc/parapet/wakepage (mode 0600), an attack tool for tests.
 *
 * Writing a page-aligned physical address below 1 MiB (not page 0) copies the real-mode
 * payload of sipi_payload.S there, its result area zeroed, and leaves it. If a processor ever
 * starts at that page, natively or as a guest, the payload records what it saw. Reading gives
 *   wakepage: none                      before any write
 *   wakepage: page=0xP ran=... code=C   ran=... as /proc/parapet/sipi describes the payload's
 *                                       result; C is "intact" while the payload's code is
 *                                       byte for byte as planted, else "changed"
 * The target is the firmware's own page for starting application processors: on its S3
 * resume path SeaBIOS sends INIT and STARTUP to all of them with page 0x10000 as the vector,
 * and puts the page's previous bytes (here: the payload) back afterwards. A processor that
 * took that STARTUP after the bytes were back would run the guest's code outside the
 * hypervisor: ran=1 svm=1 vcpu=none.
 */
#include <linux/errno.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>

#include "parapet.h"

#define LOW_MEMORY_END 0x100000

static phys_addr_t wake_page;
static DEFINE_MUTEX(wake_lock);

static ssize_t parapet_wakepage_write(struct file *f, const char __user *ubuf, size_t len, loff_t *off)
{
	char buf[24];
	size_t n = min(len, sizeof(buf) - 1);
	unsigned long phys;
	void *page;

	if (copy_from_user(buf, ubuf, n))
		return -EFAULT;
	buf[n] = 0;
	if (kstrtoul(strim(buf), 0, &phys) || !phys || phys >= LOW_MEMORY_END || (phys & ~PAGE_MASK))
		return -EINVAL;
	/* Linux keeps the first MiB reserved; its direct map covers it. */
	page = memremap(phys, PAGE_SIZE, MEMREMAP_WB);
	if (!page)
		return -ENOMEM;
	mutex_lock(&wake_lock);
	parapet_sipi_plant(page);
	wake_page = phys;
	mutex_unlock(&wake_lock);
	memunmap(page);
	pr_info("parapet_guest: wakepage: payload planted at 0x%lx\n", phys);
	return len;
}

static int parapet_wakepage_show(struct seq_file *m, void *v)
{
	char buf[128];
	void *page;
	int n;

	mutex_lock(&wake_lock);
	if (!wake_page) {
		seq_puts(m, "wakepage: none\n");
	} else if (!(page = memremap(wake_page, PAGE_SIZE, MEMREMAP_WB))) {
		seq_puts(m, "wakepage: error=nomap\n");
	} else {
		n = scnprintf(buf, sizeof(buf), "wakepage: page=0x%llx", (unsigned long long)wake_page);
		n += parapet_sipi_describe(page, buf + n, sizeof(buf) - n);
		scnprintf(buf + n, sizeof(buf) - n, " code=%s", parapet_sipi_code_intact(page) ? "intact" : "changed");
		seq_printf(m, "%s\n", buf);
		memunmap(page);
	}
	mutex_unlock(&wake_lock);
	return 0;
}

static int parapet_wakepage_open(struct inode *inode, struct file *file)
{
	return single_open(file, parapet_wakepage_show, NULL);
}

static const struct proc_ops parapet_wakepage_ops = {
	.proc_open = parapet_wakepage_open,
	.proc_read = seq_read,
	.proc_write = parapet_wakepage_write,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

int parapet_wakepage_init(struct proc_dir_entry *dir)
{
	return proc_create("wakepage", 0600, dir, &parapet_wakepage_ops) ? 0 : -ENOMEM;
}
