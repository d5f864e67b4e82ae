// SPDX-License-Identifier: GPL-2.0
/*
 * parapet_guest: lets a guest talk to the Parapet hypervisor.
 *
 * The hypervisor is called with VMMCALL (0f 01 d9) from CPL 0:
 *   in  RAX = function, RBX/RCX/RDX = arguments
 *   out RAX = 0 or a negative error (-1 unknown function, -2 bad argument,
 *             -3 bad guest address), RBX/RCX/RDX (and for STATUS from ABI 1.4, RSI/RDI) = results.
 * VERSION (0) returns RBX = magic, RCX = ABI (major << 16 | minor) and, from ABI minor 1 on,
 * RDX = the hypervisor's index of the virtual CPU that made the call.
 * Without a hypervisor VMMCALL raises #UD; the exception-table entry makes the
 * kernel skip the instruction instead of oopsing, and RBX keeps its preset 0,
 * so the module sees that no hypervisor answered and refuses to load (-ENODEV).
 *
 * Files (mode 0400):
 *   /proc/parapet/version  magic=0x54505250 abi=0x00010000
 *   /proc/parapet/log      the hypervisor's kept log text
 *   /proc/parapet/exits    "REASON COUNT" per exit reason summed over CPUs, then cpus=N
 *   /proc/parapet/status   DMA isolation, keys in force, DMA blocked (STATUS, ABI 1.3), S3
 *                          resumes and sleep requests refused (ABI 1.4)
 *   /proc/parapet/s3race   an S3 sleep with the FACS waking vector raced from another CPU (s3race.c)
 *   /proc/parapet/wakepage the SIPI payload planted on a low page a processor might wake in (wakepage.c)
 *   /proc/parapet/cpus     a probe run on each online CPU (cpus.c)
 *   /proc/parapet/conform  CPU conformance probes, compared bare vs Parapet (conform.c; mode
 *                          0600); with bare=1 the module loads without a hypervisor and
 *                          offers only this file
 * and the attack probes (mode 0600) ring0 and mmio (here), sipi (sipi.c), handoff
 * (handoff.c, mode 0200) and the DMA tools ahci, e1000 and fwcfg (dma.c), and (mode 0200)
 *   /proc/parapet/triple   writing "1" makes the CPU the writer runs on triple-fault (pin it
 *                          with taskset): interrupts off, an IDT of limit 0 loaded, INT3; the
 *                          machine shuts down (reset), Parapet seeing it as a SHUTDOWN exit.
 *
 * The module is built from main.c (this file), cpus.c, sipi.c, sipi_payload.S, handoff.c, dma.c,
 * s3race.c and the conformance probe (conform*.c, conform_asm.S); parapet.h holds what they
 * share, conform.h what the probe's files share.
 */
#include <linux/errno.h>
#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <asm/asm.h>
#include <asm/desc.h>
#include <asm/irqflags.h>

#include "parapet.h"

/* Stop reading the log after this much, in case it grows as fast as we read. */
#define PARAPET_LOG_MAX (1UL << 20)

unsigned long parapet_abi;
static struct proc_dir_entry *parapet_dir;

/* Safe in any context, also with interrupts off (the per-CPU probes run from an IPI). */
void parapet_vmmcall(struct parapet_regs *r)
{
	unsigned long rax = r->rax, rbx = r->rbx, rcx = r->rcx, rdx = r->rdx, rsi = r->rsi, rdi = r->rdi;

	asm volatile("1:	.byte 0x0f, 0x01, 0xd9\n" /* vmmcall */
		     "2:\n" _ASM_EXTABLE(1b, 2b)
		     : "+a"(rax), "+b"(rbx), "+c"(rcx), "+d"(rdx), "+S"(rsi), "+D"(rdi)
		     :
		     : "memory");
	r->rax = rax;
	r->rbx = rbx;
	r->rcx = rcx;
	r->rdx = rdx;
	r->rsi = rsi;
	r->rdi = rdi;
}

static int parapet_version_show(struct seq_file *m, void *v)
{
	seq_printf(m, "magic=0x%08lx abi=0x%08lx\n", PARAPET_MAGIC, parapet_abi);
	return 0;
}

static int parapet_log_show(struct seq_file *m, void *v)
{
	unsigned long page = __get_free_page(GFP_KERNEL);
	unsigned long offset = 0, total = 0;
	struct parapet_regs r = { 0 };

	if (!page)
		return -ENOMEM;
	while (total < PARAPET_LOG_MAX && !seq_has_overflowed(m)) {
		r.rax = PARAPET_FN_LOG_READ;
		r.rbx = virt_to_phys((void *)page);
		r.rcx = PAGE_SIZE;
		r.rdx = offset;
		parapet_vmmcall(&r);
		if ((long)r.rax != 0) {
			seq_printf(m, "\n[parapet_guest: LOG_READ failed: %ld]\n", (long)r.rax);
			break;
		}
		if (r.rcx == 0 || r.rcx > PAGE_SIZE)
			break;
		seq_write(m, (void *)page, r.rcx);
		total += r.rcx;
		offset = r.rdx;
	}
	free_page(page);
	return 0;
}

static int parapet_exits_show(struct seq_file *m, void *v)
{
	unsigned long page = __get_free_page(GFP_KERNEL);
	const u64 *counts = (const u64 *)page;
	struct parapet_regs r;
	unsigned long i, n;

	if (!page)
		return -ENOMEM;
	r.rax = PARAPET_FN_EXIT_COUNTS;
	r.rbx = virt_to_phys((void *)page);
	r.rcx = PAGE_SIZE;
	r.rdx = PARAPET_ALL_CPUS;
	parapet_vmmcall(&r);
	if ((long)r.rax != 0) {
		seq_printf(m, "error=%ld\n", (long)r.rax);
	} else {
		n = min_t(unsigned long, r.rcx, PAGE_SIZE / sizeof(u64));
		for (i = 0; i < n; i++)
			seq_printf(m, "%lu %llu\n", i, (unsigned long long)counts[i]);
		seq_printf(m, "cpus=%lu\n", r.rdx);
	}
	free_page(page);
	return 0;
}

static int parapet_version_open(struct inode *inode, struct file *file)
{
	return single_open(file, parapet_version_show, NULL);
}

static int parapet_log_open(struct inode *inode, struct file *file)
{
	return single_open(file, parapet_log_show, NULL);
}

static int parapet_exits_open(struct inode *inode, struct file *file)
{
	return single_open(file, parapet_exits_show, NULL);
}

#define PARAPET_PROC_OPS(name)                      \
	static const struct proc_ops name##_ops = { \
		.proc_open = name##_open,           \
		.proc_read = seq_read,              \
		.proc_lseek = seq_lseek,            \
		.proc_release = single_release,     \
	}

PARAPET_PROC_OPS(parapet_version);
PARAPET_PROC_OPS(parapet_log);
PARAPET_PROC_OPS(parapet_exits);

/*
 * /proc/parapet/status (ABI 1.3, STATUS): "dma_isolation=0|1 keys=0|1 dma_blocked=N
 * iommu_units=N s3_resumes=N sleeps_refused=N": whether every IOMMU translates DMA, whether a
 * policy with keys is in force, how many DMA requests the IOMMU blocked, how many IOMMU units
 * Parapet drives; from ABI 1.4, RSI the S3 resumes Parapet completed and RDI the sleep requests
 * it refused. RSI and RDI go in as 0: a hypervisor older than 1.4 leaves them so.
 */
static int parapet_status_show(struct seq_file *m, void *v)
{
	struct parapet_regs r = { .rax = PARAPET_FN_STATUS, .rsi = 0, .rdi = 0 };

	parapet_vmmcall(&r);
	if ((long)r.rax != 0)
		seq_printf(m, "error=%ld\n", (long)r.rax);
	else
		seq_printf(m,
		    "dma_isolation=%lu keys=%lu dma_blocked=%lu iommu_units=%lu s3_resumes=%lu sleeps_refused=%lu\n",
		    r.rbx & 1, (r.rbx >> 1) & 1, r.rcx, r.rdx, r.rsi, r.rdi);
	return 0;
}

static int parapet_status_open(struct inode *inode, struct file *file)
{
	return single_open(file, parapet_status_show, NULL);
}

PARAPET_PROC_OPS(parapet_status);

/*
 * /proc/parapet/ring0: an attack probe for tests. Writing an SVM instruction name executes it
 * here, in ring 0 (where a real hypervisor escape would start); reading gives the outcome,
 * "insn=NAME trap=N" (the exception vector the guest received) or "insn=NAME trap=none rax=...".
 */
static char ring0_result[80];
static DEFINE_MUTEX(ring0_lock);

#define RING0_TRY(opcode)                                                                                          \
	({                                                                                                         \
		unsigned long ax = 0xdead0000ul;                                                                   \
		int trapped;                                                                                       \
		asm volatile("1:	.byte 0x0f, 0x01, " opcode "\n"                                            \
			     "	xor %%edx, %%edx\n"                                                                 \
			     "	jmp 3f\n"                                                                           \
			     "2:	mov $1, %%edx\n"                                                                  \
			     "3:\n" _ASM_EXTABLE_TYPE(1b, 2b, EX_TYPE_FAULT)                                       \
			     : "+a"(ax), "=&d"(trapped)                                                            \
			     : "c"(0ul)                                                                            \
			     : "memory");                                                                          \
		trapped ? snprintf(ring0_result, sizeof(ring0_result), "insn=%s trap=%lu\n", name, ax)             \
			: snprintf(ring0_result, sizeof(ring0_result), "insn=%s trap=none rax=0x%lx\n", name, ax); \
	})

static ssize_t parapet_ring0_write(struct file *f, const char __user *ubuf, size_t len, loff_t *off)
{
	char name[16];
	size_t n = min(len, sizeof(name) - 1);

	if (copy_from_user(name, ubuf, n))
		return -EFAULT;
	name[n] = 0;
	strim(name);
	mutex_lock(&ring0_lock);
	if (!strcmp(name, "vmrun"))
		RING0_TRY("0xd8");
	else if (!strcmp(name, "vmmcall"))
		RING0_TRY("0xd9");
	else if (!strcmp(name, "vmload"))
		RING0_TRY("0xda");
	else if (!strcmp(name, "vmsave"))
		RING0_TRY("0xdb");
	else if (!strcmp(name, "stgi"))
		RING0_TRY("0xdc");
	else if (!strcmp(name, "clgi"))
		RING0_TRY("0xdd");
	else if (!strcmp(name, "skinit"))
		RING0_TRY("0xde");
	else if (!strcmp(name, "invlpga"))
		RING0_TRY("0xdf");
	else {
		mutex_unlock(&ring0_lock);
		return -EINVAL;
	}
	mutex_unlock(&ring0_lock);
	return len;
}

/* Reading a probe's file gives its last result (the string its open passes as private). */
static int parapet_result_show(struct seq_file *m, void *v)
{
	mutex_lock(&ring0_lock);
	seq_puts(m, m->private);
	mutex_unlock(&ring0_lock);
	return 0;
}

static int parapet_ring0_open(struct inode *inode, struct file *file)
{
	return single_open(file, parapet_result_show, ring0_result);
}

static const struct proc_ops parapet_ring0_ops = {
	.proc_open = parapet_ring0_open,
	.proc_read = seq_read,
	.proc_write = parapet_ring0_write,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

/*
 * /proc/parapet/mmio: a ring-0 MMIO write for attack tests, e.g. a PCI function's ECAM page
 * that Parapet traps. Writing "ADDR VALUE" (hex) stores the 32-bit VALUE at physical ADDR
 * (dword aligned) with one MOV; reading gives "addr=... wrote=... readback=...".
 */
static char mmio_result[96];

static ssize_t parapet_mmio_write(struct file *f, const char __user *ubuf, size_t len, loff_t *off)
{
	char buf[48];
	unsigned long addr, val;
	void __iomem *p;
	size_t n = min(len, sizeof(buf) - 1);

	if (copy_from_user(buf, ubuf, n))
		return -EFAULT;
	buf[n] = 0;
	if (sscanf(buf, "%lx %lx", &addr, &val) != 2 || (addr & 3) || val > 0xffffffffUL)
		return -EINVAL;
	p = ioremap(addr & PAGE_MASK, PAGE_SIZE);
	if (!p)
		return -ENOMEM;
	writel((u32)val, p + (addr & ~PAGE_MASK));
	mutex_lock(&ring0_lock);
	snprintf(mmio_result, sizeof(mmio_result), "addr=0x%lx wrote=0x%lx readback=0x%x\n", addr, val,
	    readl(p + (addr & ~PAGE_MASK)));
	mutex_unlock(&ring0_lock);
	iounmap(p);
	return len;
}

static int parapet_mmio_open(struct inode *inode, struct file *file)
{
	return single_open(file, parapet_result_show, mmio_result);
}

static const struct proc_ops parapet_mmio_ops = {
	.proc_open = parapet_mmio_open,
	.proc_read = seq_read,
	.proc_write = parapet_mmio_write,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

/*
 * /proc/parapet/triple: writing "1" triple-faults the CPU the writer runs on. With interrupts
 * off, an IDT of limit 0 is loaded and INT3 executed: vector 3 lies beyond the limit (#GP),
 * so does #GP's (#DF), and so does #DF's: shutdown. Under Parapet that is a SHUTDOWN exit;
 * without it QEMU resets the machine. The write never returns.
 */
static ssize_t parapet_triple_write(struct file *f, const char __user *ubuf, size_t len, loff_t *off)
{
	struct desc_ptr none = { .size = 0, .address = 0 };
	char c;

	if (len < 1 || copy_from_user(&c, ubuf, 1))
		return -EFAULT;
	if (c != '1')
		return -EINVAL;
	pr_emerg("parapet_guest: triple fault on cpu%d\n", raw_smp_processor_id());
	local_irq_disable();
	asm volatile("lidt %0\n\tint3" : : "m"(none) : "memory");
	for (;;) /* not reached */
		asm volatile("hlt");
	return len;
}

static const struct proc_ops parapet_triple_ops = {
	.proc_write = parapet_triple_write,
};

/*
 * bare=1: load even where no hypervisor answers VMMCALL, with only the probe that needs none
 * (/proc/parapet/conform), so that a bare boot can run the same conformance probes as a boot
 * under Parapet. Without it (init's insmod) a bare boot still refuses the module (ENODEV).
 */
static bool bare;
module_param(bare, bool, 0444);
MODULE_PARM_DESC(bare, "without a hypervisor, load anyway with only /proc/parapet/conform");

static bool parapet_present;

static int __init parapet_guest_init(void)
{
	struct parapet_regs r = { .rax = PARAPET_FN_VERSION };
	int err;

	parapet_vmmcall(&r);
	parapet_present = r.rax == 0 && r.rbx == PARAPET_MAGIC;
	if (!parapet_present && !bare) {
		pr_info("parapet_guest: no Parapet hypervisor\n");
		return -ENODEV;
	}
	if (parapet_present && (r.rcx >> 16) != PARAPET_ABI_MAJOR) {
		pr_err("parapet_guest: hypervisor ABI 0x%08lx, want major %d\n", r.rcx, PARAPET_ABI_MAJOR);
		return -EPROTO;
	}
	parapet_abi = parapet_present ? r.rcx : 0;

	parapet_dir = proc_mkdir("parapet", NULL);
	if (!parapet_dir)
		return -ENOMEM;
	if (!parapet_present) {
		err = parapet_conform_init(parapet_dir);
		if (err) {
			proc_remove(parapet_dir);
			return err;
		}
		pr_info("parapet_guest: no hypervisor; conformance probe only (bare=1)\n");
		return 0;
	}
	if (!proc_create("version", 0400, parapet_dir, &parapet_version_ops) ||
	    !proc_create("log", 0400, parapet_dir, &parapet_log_ops) ||
	    !proc_create("exits", 0400, parapet_dir, &parapet_exits_ops) ||
	    !proc_create("status", 0400, parapet_dir, &parapet_status_ops) ||
	    !proc_create("ring0", 0600, parapet_dir, &parapet_ring0_ops) ||
	    !proc_create("mmio", 0600, parapet_dir, &parapet_mmio_ops) ||
	    !proc_create("triple", 0200, parapet_dir, &parapet_triple_ops)) {
		proc_remove(parapet_dir);
		return -ENOMEM;
	}
	err = parapet_cpus_init(parapet_dir);
	if (!err)
		err = parapet_sipi_init(parapet_dir);
	if (!err)
		err = parapet_handoff_init(parapet_dir);
	if (!err)
		err = parapet_dma_init(parapet_dir);
	if (!err)
		err = parapet_s3race_init(parapet_dir);
	if (!err)
		err = parapet_wakepage_init(parapet_dir);
	if (!err)
		err = parapet_conform_init(parapet_dir);
	if (err) {
		proc_remove(parapet_dir);
		parapet_cpus_exit();
		parapet_dma_exit();
		return err;
	}
	pr_info("parapet_guest: hypervisor ABI 0x%08lx\n", parapet_abi);
	return 0;
}

static void __exit parapet_guest_exit(void)
{
	proc_remove(parapet_dir);
	parapet_conform_exit();
	if (parapet_present) {
		parapet_cpus_exit();
		parapet_dma_exit();
	}
}

module_init(parapet_guest_init);
module_exit(parapet_guest_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Guest interface to the Parapet hypervisor");
