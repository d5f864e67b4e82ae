// SPDX-License-Identifier: GPL-2.0
/*
 * /proc/parapet/conform (mode 0600): CPU conformance probes. An unmodified guest must not be
 * able to tell the CPU under Parapet from the bare one, except for what Parapet hides on
 * purpose (SVM and VMX, its own memory). Reading the file runs the probes and prints one
 * name=value line per observation, with nothing that differs from boot to boot (no
 * addresses, no times): the test compares a bare boot's output with Parapet's line by line.
 *
 * Families, in the order they run (each between "family.NAME.begin=yes" and "family.NAME.end=yes",
 * so a family that did not finish shows):
 *   cpuid        CPUID on every CPU, and the bits that follow CR4 and XCR0 (conform_cpuid.c)
 *   step         single-stepping over intercepted instructions (conform_events.c)
 *   nmi          an NMI sent from inside the NMI handler (conform_events.c)
 *   apicbase     moving the xAPIC page with IA32_APIC_BASE (conform_events.c)
 *   mmio.ram, mmio.apic, mmio.ioapic, mmio.ecam
 *                every instruction form against each kind of trapped page (conform_mmio.c)
 * Writing family names (or "all", the default) chooses what the next reads run; one family
 * per read keeps one that brings the guest down from hiding the others' results. A read while
 * another runs fails with EBUSY rather than wait (a probe that oopsed keeps the lock).
 */
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/seq_buf.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "parapet.h"
#include "conform.h"

#define CF_OUT_SIZE (1u << 20)

static void cf_mmio_ram(struct seq_buf *out)
{
	cf_mmio(out, "ram");
}
static void cf_mmio_apic(struct seq_buf *out)
{
	cf_mmio(out, "apic");
}
static void cf_mmio_ioapic(struct seq_buf *out)
{
	cf_mmio(out, "ioapic");
}
static void cf_mmio_ecam(struct seq_buf *out)
{
	cf_mmio(out, "ecam");
}

static const struct {
	const char *name;
	void (*run)(struct seq_buf *out);
} cf_families[] = {
	{ "cpuid", cf_cpuid },
	{ "step", cf_step },
	{ "nmi", cf_nmi },
	{ "apicbase", cf_apicbase },
	{ "mmio.ram", cf_mmio_ram },
	{ "mmio.apic", cf_mmio_apic },
	{ "mmio.ioapic", cf_mmio_ioapic },
	{ "mmio.ecam", cf_mmio_ecam },
};

static DEFINE_MUTEX(cf_lock);
static unsigned long cf_selected = ~0ul; /* bit i: cf_families[i] */

struct cf_output {
	size_t len;
	char text[];
};

static int cf_open(struct inode *inode, struct file *file)
{
	struct cf_output *o;
	struct seq_buf sb;
	unsigned int i;

	if (!(file->f_mode & FMODE_READ))
		return 0;
	o = kvmalloc(sizeof(*o) + CF_OUT_SIZE, GFP_KERNEL);
	if (!o)
		return -ENOMEM;
	if (!mutex_trylock(&cf_lock)) {
		kvfree(o);
		return -EBUSY;
	}
	seq_buf_init(&sb, o->text, CF_OUT_SIZE);
	for (i = 0; i < ARRAY_SIZE(cf_families); i++) {
		if (!(cf_selected & BIT(i)))
			continue;
		seq_buf_printf(&sb, "family.%s.begin=yes\n", cf_families[i].name);
		cf_families[i].run(&sb);
		seq_buf_printf(&sb, "family.%s.end=yes\n", cf_families[i].name);
	}
	mutex_unlock(&cf_lock);
	if (seq_buf_has_overflowed(&sb))
		seq_buf_printf(&sb, "conform=error: output truncated\n");
	o->len = seq_buf_used(&sb);
	file->private_data = o;
	return 0;
}

static ssize_t cf_read(struct file *file, char __user *buf, size_t len, loff_t *pos)
{
	struct cf_output *o = file->private_data;

	if (!o)
		return -EINVAL;
	return simple_read_from_buffer(buf, len, pos, o->text, o->len);
}

static ssize_t cf_write(struct file *file, const char __user *ubuf, size_t len, loff_t *pos)
{
	char buf[128], *p = buf, *word;
	unsigned long sel = 0;
	unsigned int i;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = 0;
	while ((word = strsep(&p, " \t\n"))) {
		if (!*word)
			continue;
		if (!strcmp(word, "all")) {
			sel = ~0ul;
			continue;
		}
		for (i = 0; i < ARRAY_SIZE(cf_families) && strcmp(word, cf_families[i].name); i++)
			;
		if (i == ARRAY_SIZE(cf_families))
			return -EINVAL;
		sel |= BIT(i);
	}
	if (!sel)
		return -EINVAL;
	if (!mutex_trylock(&cf_lock))
		return -EBUSY;
	cf_selected = sel;
	mutex_unlock(&cf_lock);
	return len;
}

static int cf_release(struct inode *inode, struct file *file)
{
	kvfree(file->private_data);
	return 0;
}

static const struct proc_ops cf_ops = {
	.proc_open = cf_open,
	.proc_read = cf_read,
	.proc_write = cf_write,
	.proc_lseek = default_llseek,
	.proc_release = cf_release,
};

int parapet_conform_init(struct proc_dir_entry *dir)
{
	int err;

	BUILD_BUG_ON(offsetof(struct cf_state, in[CF_RDI]) != CF_IN(CF_RDI));
	BUILD_BUG_ON(offsetof(struct cf_state, out[CF_R8]) != CF_OUT(CF_R8));
	BUILD_BUG_ON(offsetof(struct cf_state, flags_in) != CF_FLAGS_IN);
	BUILD_BUG_ON(offsetof(struct cf_state, flags_out) != CF_FLAGS_OUT);
	BUILD_BUG_ON(offsetof(struct cf_state, trap) != CF_TRAP);
	BUILD_BUG_ON(sizeof(struct cf_form) != 32);
	BUILD_BUG_ON(ARRAY_SIZE(cf_families) > BITS_PER_LONG);

	err = cf_events_init();
	if (err)
		return err;
	if (!proc_create("conform", 0600, dir, &cf_ops)) {
		cf_events_exit();
		return -ENOMEM;
	}
	return 0;
}

void parapet_conform_exit(void)
{
	cf_events_exit();
}
