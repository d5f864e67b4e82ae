// SPDX-License-Identifier: GPL-2.0
/*
 * parapet_guest: /proc/parapet/sipi (mode 0600), an attack tool for tests.
 *
 * A guest that could start a processor itself, with INIT and STARTUP IPIs, would get a CPU
 * running outside the hypervisor. Writing "METHOD CPU" tries exactly that: the current CPU
 * sends INIT, then STARTUP twice, to the OFFLINE Linux CPU number CPU, by writing its own
 * local APIC's interrupt command register (ICR) directly, not through the kernel's IPI code.
 * METHOD says how the IPIs are addressed:
 *   phys     physical destination mode, destination = the target's APIC ID
 *   logical  logical destination mode: INIT to the target's logical ID as recorded at
 *            module load (xAPIC: LDR bits 31:24; x2APIC: the whole 32-bit LDR), STARTUP to
 *            the logical broadcast (INIT cleared the target's xAPIC LDR)
 *   allbut   destination shorthand "all excluding self" (only while every other CPU is
 *            offline, else -EBUSY: it would reset online CPUs too)
 * The STARTUP vector points at the real-mode payload of sipi_payload.S, copied to
 * PARAPET_SIPI_PAGE; it reports what the started processor saw. The write returns once the
 * payload has finished or after 2 s; errors: -EINVAL (bad method or CPU, or no recorded
 * logical ID), -EBUSY (the CPU is online), -ETIMEDOUT (the ICR stayed busy).
 *
 * "METHOD CPU nmi" (x2APIC only) has the payload test NMI blocking as well (sipi_payload.S).
 * "METHOD CPU BASE" (xAPIC only, BASE a 4 KiB-aligned physical address in hex) first moves the
 * current CPU's local APIC to BASE (IA32_APIC_BASE), reads its version register there, sends
 * the IPIs through the ICR at BASE and moves the APIC back, all with interrupts off (Linux
 * keeps using the APIC at its old address); -EIO when the move faulted.
 *
 * Reading gives the last result ("sipi: none" before any):
 *   sipi: method=M cpu=N apic=0xA ran=1 svm=S vmmcall=0xEBX vcpu=V
 *       the payload ran to its end: S = CPUID 0x80000001 ECX bit 2 there, EBX/EDX after its
 *       VMMCALL VERSION (vcpu=none when EBX is not the magic)
 *   sipi: method=M cpu=N apic=0xA ran=partial svm=S [vmmcall=fault]
 *       it ran CPUID but not past VMMCALL (vmmcall=fault: VMMCALL raised an exception, as
 *       it does without a hypervisor)
 *   sipi: method=M cpu=N apic=0xA ran=0
 *       nothing ran within 2 s
 * and " fault_ip=0xIP" after any of them when another instruction of the payload faulted.
 * Once it ran CPUID: " osxsave=O", CPUID 1 ECX bit 27 there (its CR4 is clear: 0 is right).
 * With nmi: " nmis=N nmi_depth=D", the NMIs its handler took and the most handlers at once.
 * With BASE: " base=0xB moved=0xM apicver=0xV home_apicver=0xH", M = IA32_APIC_BASE read
 * after the move, V = the version register read at BASE, H = the one read before the move.
 *
 * Afterwards the CPU is parked in the payload (HLT, interrupts off) until Linux brings it
 * back online with its own INIT/STARTUP sequence.
 */
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/errno.h>
#include <linux/io.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <asm/apicdef.h>
#include <asm/cacheflush.h>
#include <asm/msr.h>

#include "parapet.h"
#include "sipi_payload.h"

extern const u8 parapet_sipi_payload[], parapet_sipi_payload_end[];

enum sipi_method { SIPI_PHYS, SIPI_LOGICAL, SIPI_ALLBUT };

static const char *const sipi_method_names[] = {
	[SIPI_PHYS] = "phys",
	[SIPI_LOGICAL] = "logical",
	[SIPI_ALLBUT] = "allbut",
};

#define SIPI_WAIT_MS 2000   /* for the payload to finish */
#define ICR_IDLE_TRIES 1000 /* of 10 us each, for the xAPIC delivery status */

static char sipi_result[256] = "sipi: none\n";
static DEFINE_MUTEX(sipi_lock);

/*
 * Sends one IPI by writing the current CPU's ICR: low = delivery mode, destination mode,
 * shorthand, vector; dest = the destination field. Interrupts are off meanwhile, so an IPI
 * the kernel sends from an interrupt handler cannot come between the two xAPIC writes.
 */
static int icr_send(bool x2apic, void __iomem *mmio, u32 dest, u32 low)
{
	unsigned long flags;
	int i, err = 0;

	local_irq_save(flags);
	if (x2apic) {
		/* One write of MSR 0x830: destination in bits 63:32, no delivery status. */
		wrmsrl(APIC_BASE_MSR + (APIC_ICR >> 4), (u64)dest << 32 | low);
	} else {
		/* Wait until the previous IPI has left (delivery status, bit 12). */
		for (i = 0; i < ICR_IDLE_TRIES && (readl(mmio + APIC_ICR) & APIC_ICR_BUSY); i++)
			udelay(10);
		if (i == ICR_IDLE_TRIES) {
			err = -ETIMEDOUT;
		} else {
			writel(dest << 24, mmio + APIC_ICR2); /* destination: bits 31:24 */
			writel(low, mmio + APIC_ICR);         /* this write sends */
		}
	}
	local_irq_restore(flags);
	return err;
}

/* A move of the local APIC for the IPIs (BASE given): where to, and what was seen there. */
struct apic_move {
	u64 base;                  /* 0: no move */
	void __iomem *page;        /* BASE, mapped */
	u64 moved;                 /* IA32_APIC_BASE after the move */
	u32 version, home_version; /* the version register at BASE, and before the move */
};

/*
 * INIT, 10 ms, STARTUP, 300 us, STARTUP: the universal start-up sequence. Runs with
 * preemption off, so every IPI leaves from the same CPU's APIC, in the mode that APIC is
 * actually in (IA32_APIC_BASE.EXTD), whatever the kernel's apic driver believes. With a move,
 * interrupts stay off from the move to the move back.
 */
static int sipi_send(enum sipi_method method, u32 apic_id, u32 ldr, u32 *dest_out, bool *x2apic_out,
    struct apic_move *mv)
{
	void __iomem *mmio = parapet_apic_mmio();
	unsigned long flags = 0;
	u64 home = 0;
	u32 mode, dest, dfr;
	bool x2apic;
	int err;

	preempt_disable();
	x2apic = parapet_apic_x2apic();
	*x2apic_out = x2apic;
	if ((!x2apic && !mmio) || (x2apic && mv->base)) {
		err = x2apic ? -EINVAL : -ENODEV;
		goto out;
	}
	if (mv->base) {
		local_irq_save(flags);
		rdmsrl(MSR_IA32_APICBASE, home);
		mv->home_version = readl(mmio + APIC_LVR);
		if (wrmsrl_safe(MSR_IA32_APICBASE, (home & ~PAGE_MASK) | mv->base)) {
			local_irq_restore(flags);
			err = -EIO;
			goto out;
		}
		rdmsrl(MSR_IA32_APICBASE, mv->moved);
		mmio = mv->page;
		mv->version = readl(mmio + APIC_LVR);
	}
	switch (method) {
	case SIPI_PHYS:
		mode = APIC_DEST_PHYSICAL;
		dest = apic_id;
		break;
	case SIPI_LOGICAL:
		mode = APIC_DEST_LOGICAL;
		/*
		 * x2APIC: logical destinations are always cluster mode and the destination is the
		 * target's whole LDR. xAPIC: the destination is 8 bits compared with LDR bits 31:24,
		 * as a bit mask in the flat model (DFR = 0xFFFFFFFF, what Linux uses for up to 8
		 * CPUs) or as cluster:members in the cluster model (DFR = 0x0FFFFFFF); in both the
		 * target's own LDR bits 31:24 select it. The sender's DFR is only logged.
		 */
		if (x2apic) {
			dest = ldr;
		} else {
			dest = ldr >> 24;
			dfr = readl(mmio + APIC_DFR);
			pr_info("parapet_guest: sipi: xAPIC DFR 0x%08x (%s model)\n", dfr,
			    dfr == APIC_DFR_FLAT ? "flat" : "cluster");
		}
		break;
	default:
		mode = APIC_DEST_ALLBUT;
		dest = 0;
		break;
	}
	*dest_out = dest;

	err = icr_send(x2apic, mmio, dest, mode | APIC_INT_LEVELTRIG | APIC_INT_ASSERT | APIC_DM_INIT);
	if (err)
		goto back;
	mdelay(10);
	/*
	 * INIT clears an xAPIC's LDR, so after it a logical STARTUP can only reach the target as
	 * the logical broadcast; STARTUP is ignored by every CPU not waiting for one.
	 */
	if (method == SIPI_LOGICAL)
		dest = x2apic ? 0xFFFFFFFF : 0xFF;
	err = icr_send(x2apic, mmio, dest, mode | APIC_DM_STARTUP | PARAPET_SIPI_VECTOR);
	if (err)
		goto back;
	udelay(300);
	err = icr_send(x2apic, mmio, dest, mode | APIC_DM_STARTUP | PARAPET_SIPI_VECTOR);
back:
	if (mv->base) {
		wrmsrl(MSR_IA32_APICBASE, home);
		local_irq_restore(flags);
	}
out:
	preempt_enable();
	return err;
}

static u32 payload_word(const void *page, unsigned int offset)
{
	return READ_ONCE(*(const u32 *)(page + offset));
}

/*
 * What the payload on `page` did, appended to buf: " ran=1 svm=S vmmcall=0xEBX vcpu=V|none",
 * " ran=partial svm=S [vmmcall=fault]" or " ran=0", then " fault_ip=0xIP" if another
 * instruction faulted. Returns the length written.
 */
int parapet_sipi_describe(const void *page, char *buf, size_t size)
{
	u32 fault, ecx, ebx, edx;
	int n = 0;

	rmb(); /* the markers are stored after the data they vouch for */
	fault = payload_word(page, PARAPET_SIPI_FAULT);
	ecx = payload_word(page, PARAPET_SIPI_ECX);
	ebx = payload_word(page, PARAPET_SIPI_EBX);
	edx = payload_word(page, PARAPET_SIPI_EDX);
	if (payload_word(page, PARAPET_SIPI_DONE) == PARAPET_SIPI_DONE_MAGIC) {
		n += scnprintf(buf + n, size - n, " ran=1 svm=%d vmmcall=0x%08x", !!(ecx & BIT(2)), ebx);
		if (ebx == PARAPET_MAGIC)
			n += scnprintf(buf + n, size - n, " vcpu=%u", edx);
		else
			n += scnprintf(buf + n, size - n, " vcpu=none");
	} else if (payload_word(page, PARAPET_SIPI_CPUID_DONE) == PARAPET_SIPI_CPUID_MAGIC) {
		n += scnprintf(buf + n, size - n, " ran=partial svm=%d", !!(ecx & BIT(2)));
		if (fault == PARAPET_SIPI_FAULT_VMMCALL)
			n += scnprintf(buf + n, size - n, " vmmcall=fault");
	} else {
		n += scnprintf(buf + n, size - n, " ran=0");
	}
	if (fault && fault != PARAPET_SIPI_FAULT_VMMCALL)
		n += scnprintf(buf + n, size - n, " fault_ip=0x%x", payload_word(page, PARAPET_SIPI_FAULT_IP));
	return n;
}

/* Whether the payload's code on `page` is byte for byte what parapet_sipi_plant() put there. */
bool parapet_sipi_code_intact(const void *page)
{
	return !memcmp(page, parapet_sipi_payload, parapet_sipi_payload_end - parapet_sipi_payload);
}

/* Copies the payload to `page` (mapped write-back), with a zeroed result area, IVT and stack. */
void parapet_sipi_plant(void *page)
{
	memset(page, 0, PAGE_SIZE);
	memcpy(page, parapet_sipi_payload, parapet_sipi_payload_end - parapet_sipi_payload);
	clflush_cache_range(page, PAGE_SIZE);
}

/* Waits for the payload to finish or fault (or SIPI_WAIT_MS), then describes what it did. */
static void sipi_collect(const void *page, enum sipi_method method, unsigned int cpu, u32 apic_id,
    const struct apic_move *mv, bool nmi)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(SIPI_WAIT_MS);
	int n;

	while (payload_word(page, PARAPET_SIPI_DONE) != PARAPET_SIPI_DONE_MAGIC &&
	       !payload_word(page, PARAPET_SIPI_FAULT) && time_before(jiffies, deadline))
		msleep(10);
	n = scnprintf(sipi_result, sizeof(sipi_result), "sipi: method=%s cpu=%u apic=0x%x", sipi_method_names[method],
	    cpu, apic_id);
	n += parapet_sipi_describe(page, sipi_result + n, sizeof(sipi_result) - n);
	if (payload_word(page, PARAPET_SIPI_CPUID_DONE) == PARAPET_SIPI_CPUID_MAGIC)
		n += scnprintf(sipi_result + n, sizeof(sipi_result) - n, " osxsave=%d",
		    !!(payload_word(page, PARAPET_SIPI_ECX1) & BIT(27)));
	if (nmi)
		n += scnprintf(sipi_result + n, sizeof(sipi_result) - n, " nmis=%u nmi_depth=%u",
		    payload_word(page, PARAPET_SIPI_NMIS), payload_word(page, PARAPET_SIPI_NMI_DEPTH));
	if (mv->base)
		n += scnprintf(sipi_result + n, sizeof(sipi_result) - n,
		    " base=0x%llx moved=0x%llx apicver=0x%x home_apicver=0x%x", mv->base, mv->moved, mv->version,
		    mv->home_version);
	scnprintf(sipi_result + n, sizeof(sipi_result) - n, "\n");
}

static ssize_t parapet_sipi_write(struct file *f, const char __user *ubuf, size_t len, loff_t *off)
{
	char buf[48], name[16], third[20] = "";
	unsigned int cpu;
	u32 apic_id, ldr, dest = 0;
	size_t n = min(len, sizeof(buf) - 1);
	struct apic_move mv = { 0 };
	unsigned long long base = 0;
	void *page;
	int method, err;
	bool recorded, nmi = false, x2apic = false;

	if (copy_from_user(buf, ubuf, n))
		return -EFAULT;
	buf[n] = 0;
	if (sscanf(buf, "%15s %u %19s", name, &cpu, third) < 2)
		return -EINVAL;
	nmi = !strcmp(third, "nmi");
	if (third[0] && !nmi && (kstrtoull(third, 16, &base) || !base || (base & ~PAGE_MASK)))
		return -EINVAL;
	method = match_string(sipi_method_names, ARRAY_SIZE(sipi_method_names), name);
	if (method < 0 || cpu >= nr_cpu_ids || !cpu_present(cpu))
		return -EINVAL;
	recorded = parapet_cpu_recorded(cpu, &apic_id, &ldr);
	if (!recorded) {
		if (method == SIPI_LOGICAL)
			return -EINVAL; /* its LDR was never seen */
		apic_id = cpu_physical_id(cpu);
	}

	/* Linux's own page tables map it (the direct map covers the first MiB). */
	page = memremap(PARAPET_SIPI_PAGE, PAGE_SIZE, MEMREMAP_WB);
	if (!page)
		return -ENOMEM;
	if (base) {
		mv.base = base;
		mv.page = ioremap(base, PAGE_SIZE);
		if (!mv.page) {
			memunmap(page);
			return -ENOMEM;
		}
	}

	mutex_lock(&sipi_lock);
	cpus_read_lock(); /* no CPU comes or goes meanwhile */
	if (cpu_online(cpu) || (method == SIPI_ALLBUT && num_online_cpus() > 1)) {
		err = -EBUSY;
		goto out;
	}

	parapet_sipi_plant(page);
	if (nmi) {
		*(u32 *)(page + PARAPET_SIPI_MODE) = PARAPET_SIPI_MODE_NMI;
		clflush_cache_range(page, PAGE_SIZE);
	}

	err = sipi_send(method, apic_id, ldr, &dest, &x2apic, &mv);
	pr_info("parapet_guest: sipi: %s to cpu %u (apic 0x%x) via %s ICR at 0x%llx, destination 0x%x: %d\n",
	    sipi_method_names[method], cpu, apic_id, x2apic ? "x2APIC" : "xAPIC", base, dest, err);
	if (!err)
		sipi_collect(page, method, cpu, apic_id, &mv, nmi);
out:
	cpus_read_unlock();
	mutex_unlock(&sipi_lock);
	if (mv.page)
		iounmap(mv.page);
	memunmap(page);
	return err ? err : len;
}

static int parapet_sipi_show(struct seq_file *m, void *v)
{
	mutex_lock(&sipi_lock);
	seq_puts(m, sipi_result);
	mutex_unlock(&sipi_lock);
	return 0;
}

static int parapet_sipi_open(struct inode *inode, struct file *file)
{
	return single_open(file, parapet_sipi_show, NULL);
}

static const struct proc_ops parapet_sipi_ops = {
	.proc_open = parapet_sipi_open,
	.proc_read = seq_read,
	.proc_write = parapet_sipi_write,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

int parapet_sipi_init(struct proc_dir_entry *dir)
{
	return proc_create("sipi", 0600, dir, &parapet_sipi_ops) ? 0 : -ENOMEM;
}
