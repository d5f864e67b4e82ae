// SPDX-License-Identifier: GPL-2.0
/*
 * parapet_guest: what each CPU sees, and raw local APIC access for the SIPI attack (sipi.c).
 *
 * /proc/parapet/cpus (mode 0400) runs a probe on every online CPU in turn (from an IPI,
 * smp_call_function_single) and prints one line per CPU:
 *   cpu=N apic=0xA vcpu=V svm=0 vmx=0 svme=refused cpuid_exits=K
 * apic     the APIC ID the CPU's local APIC reports (x2APIC: the full 32-bit ID)
 * vcpu     RDX of VMMCALL VERSION on that CPU: the hypervisor's index of its virtual CPU;
 *          "none" when no hypervisor answered there (RBX is not the magic), "unknown" when
 *          one answered with ABI minor 0, which does not return it
 * svm      CPUID 0x80000001 ECX bit 2;  vmx: CPUID 1 ECX bit 5
 * svme     whether setting EFER.SVME faulted ("refused") or not ("accepted"; EFER is put
 *          back at once)
 * cpuid_exits  EXIT_COUNTS counter 0 (CPUID exits) of that vcpu, read after the CPUIDs above,
 *          so at least 2 under Parapet; "none" when the vcpu is not known
 *
 * The module also records, at load, every online CPU's APIC ID and logical destination
 * register (LDR), read on the CPU itself, so that an attack can address a CPU after Linux
 * has taken it offline.
 */
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/errno.h>
#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <asm/apicdef.h>
#include <asm/msr.h>
#include <asm/msr-index.h>
#include <asm/processor.h>

#include "parapet.h"

#define CPUID_80000001_ECX_SVM BIT(2)
#define CPUID_1_ECX_VMX BIT(5)

/*
 * Local APIC access that does not go through the kernel's apic driver, so a probe or an
 * attack touches exactly the registers it names. IA32_APIC_BASE.EXTD (bit 10) says whether
 * the APIC is in x2APIC mode (registers are MSRs 0x800 + offset / 16) or in xAPIC mode
 * (registers are MMIO at the base in IA32_APIC_BASE, mapped here at load).
 */
static void __iomem *apic_mmio;

bool parapet_apic_x2apic(void)
{
	u64 base;

	rdmsrl(MSR_IA32_APICBASE, base);
	return base & X2APIC_ENABLE;
}

void __iomem *parapet_apic_mmio(void)
{
	return apic_mmio;
}

/* Reads the register at xAPIC offset reg on the current CPU (0 if it cannot). */
u32 parapet_apic_read(u32 reg)
{
	u64 v;

	if (parapet_apic_x2apic()) {
		if (rdmsrl_safe(APIC_BASE_MSR + (reg >> 4), &v))
			return 0;
		return (u32)v;
	}
	return apic_mmio ? readl(apic_mmio + reg) : 0;
}

/* The APIC ID as the current CPU's APIC reports it: bits 31:24 of the ID register in xAPIC. */
static u32 apic_id_here(void)
{
	u32 id = parapet_apic_read(APIC_ID);

	return parapet_apic_x2apic() ? id : id >> 24;
}

/* APIC ID and LDR of each CPU that was online at load, indexed by Linux CPU number. */
struct cpu_record {
	bool valid;
	u32 apic_id;
	u32 ldr;
};

static struct cpu_record *cpu_records;

static void record_cpu(void *arg)
{
	struct cpu_record *rec = arg;

	rec->apic_id = apic_id_here();
	rec->ldr = parapet_apic_read(APIC_LDR);
	rec->valid = true;
}

bool parapet_cpu_recorded(unsigned int cpu, u32 *apic_id, u32 *ldr)
{
	if (cpu >= nr_cpu_ids || !cpu_records[cpu].valid)
		return false;
	*apic_id = cpu_records[cpu].apic_id;
	*ldr = cpu_records[cpu].ldr;
	return true;
}

/* What the probe found on one CPU. */
struct cpu_probe {
	u64 *counts; /* one page for EXIT_COUNTS */
	u32 apic_id;
	bool hv, vcpu_known;
	unsigned long vcpu;
	u32 ecx_80000001, ecx_1;
	bool svme_accepted;
	bool have_exits;
	u64 cpuid_exits;
};

/* Runs on the probed CPU, with interrupts off. */
static void probe_cpu(void *arg)
{
	struct cpu_probe *p = arg;
	struct parapet_regs r = { .rax = PARAPET_FN_VERSION, .rdx = PARAPET_ALL_CPUS };
	u64 efer;

	p->apic_id = apic_id_here();

	parapet_vmmcall(&r);
	p->hv = r.rax == 0 && r.rbx == PARAPET_MAGIC;
	p->vcpu_known = p->hv && PARAPET_ABI_MINOR(r.rcx) >= 1;
	p->vcpu = r.rdx;

	p->ecx_80000001 = cpuid_ecx(0x80000001);
	p->ecx_1 = cpuid_ecx(1);

	p->svme_accepted = false;
	if (!rdmsrl_safe(MSR_EFER, &efer) && !wrmsrl_safe(MSR_EFER, efer | EFER_SVME)) {
		p->svme_accepted = true;
		wrmsrl_safe(MSR_EFER, efer);
	}

	/* After the CPUIDs, so they are counted. */
	p->have_exits = false;
	if (p->vcpu_known) {
		r.rax = PARAPET_FN_EXIT_COUNTS;
		r.rbx = virt_to_phys(p->counts);
		r.rcx = PAGE_SIZE;
		r.rdx = p->vcpu;
		parapet_vmmcall(&r);
		if (r.rax == 0 && r.rcx > PARAPET_EXIT_CPUID) {
			p->cpuid_exits = p->counts[PARAPET_EXIT_CPUID];
			p->have_exits = true;
		}
	}
}

static int parapet_cpus_show(struct seq_file *m, void *v)
{
	struct cpu_probe p = { .counts = (u64 *)__get_free_page(GFP_KERNEL) };
	unsigned int cpu;
	int err;

	if (!p.counts)
		return -ENOMEM;
	cpus_read_lock();
	for_each_online_cpu(cpu)
	{
		err = smp_call_function_single(cpu, probe_cpu, &p, 1);
		if (err) {
			seq_printf(m, "cpu=%u error=%d\n", cpu, err);
			continue;
		}
		seq_printf(m, "cpu=%u apic=0x%x", cpu, p.apic_id);
		if (!p.hv)
			seq_puts(m, " vcpu=none");
		else if (!p.vcpu_known)
			seq_puts(m, " vcpu=unknown");
		else
			seq_printf(m, " vcpu=%lu", p.vcpu);
		seq_printf(m, " svm=%d vmx=%d svme=%s", !!(p.ecx_80000001 & CPUID_80000001_ECX_SVM),
		    !!(p.ecx_1 & CPUID_1_ECX_VMX), p.svme_accepted ? "accepted" : "refused");
		if (p.have_exits)
			seq_printf(m, " cpuid_exits=%llu\n", (unsigned long long)p.cpuid_exits);
		else
			seq_puts(m, " cpuid_exits=none\n");
	}
	cpus_read_unlock();
	free_page((unsigned long)p.counts);
	return 0;
}

static int parapet_cpus_open(struct inode *inode, struct file *file)
{
	return single_open(file, parapet_cpus_show, NULL);
}

static const struct proc_ops parapet_cpus_ops = {
	.proc_open = parapet_cpus_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

int parapet_cpus_init(struct proc_dir_entry *dir)
{
	unsigned int cpu;
	u64 base;

	cpu_records = kcalloc(nr_cpu_ids, sizeof(*cpu_records), GFP_KERNEL);
	if (!cpu_records)
		return -ENOMEM;

	/* The xAPIC register page; unused (and not mapped) when the APIC is in x2APIC mode. */
	rdmsrl(MSR_IA32_APICBASE, base);
	if (!(base & X2APIC_ENABLE)) {
		apic_mmio = ioremap(base & GENMASK_ULL(51, 12), PAGE_SIZE);
		if (!apic_mmio) {
			parapet_cpus_exit();
			return -ENOMEM;
		}
	}

	cpus_read_lock();
	for_each_online_cpu(cpu) smp_call_function_single(cpu, record_cpu, &cpu_records[cpu], 1);
	cpus_read_unlock();

	if (!proc_create("cpus", 0400, dir, &parapet_cpus_ops)) {
		parapet_cpus_exit();
		return -ENOMEM;
	}
	return 0;
}

/* Frees what parapet_cpus_init set up; the /proc files are gone by then. */
void parapet_cpus_exit(void)
{
	if (apic_mmio)
		iounmap(apic_mmio);
	apic_mmio = NULL;
	kfree(cpu_records);
	cpu_records = NULL;
}
