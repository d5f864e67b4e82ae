// SPDX-License-Identifier: GPL-2.0
/*
 * Conformance probe, families "nmi", "step" and "apicbase": how the CPU delivers events
 * around what a hypervisor intercepts. Each runs on CPU 0 (CPU numbers and APIC IDs in the
 * output are then the same in every boot), with a bounded wait wherever it waits.
 *
 * nmi: an NMI sent to the CPU itself from inside its NMI handler must wait until the handler
 *   returns (the CPU blocks NMIs from the delivery of one until the next IRET). Linux's own
 *   NMI entry hides nesting from handlers: arch/x86/entry/entry_64.S turns an NMI that
 *   arrives while the first is still on the NMI stack into another round of the outer
 *   handler ("repeat_nmi"), so a depth counter in a registered handler always reads 1. To
 *   see the CPU itself, the handler, on its first call, loads a private copy of the IDT in
 *   which vector 2 is cf_nmi_stub (no IST: it runs on the current stack and only counts),
 *   sends the NMI, waits 20 ms, and loads Linux's IDT back. Blocked as it should be, the NMI
 *   comes after the IRET, through Linux, as the handler's second call; delivered inside the
 *   handler, it lands in the stub. Lines: nmi.handler_calls (2), nmi.nested_in_handler (0),
 *   nmi.max_depth (1), nmi.total (2: none lost, none doubled).
 *
 * step: RFLAGS.TF set by POPF right before an instruction makes a #DB right after it. For
 *   each probe of conform_asm.S, the die notifier (DIE_DEBUG) records where the first #DB
 *   came, as an offset from the instruction's start (its length, when right), and DR6
 *   (positive polarity, as Linux passes it: 0x4000 is BS, single-step), clears TF and
 *   consumes the event, so Linux's exc_debug_kernel() neither warns nor signals. Probes:
 *   nop (control), cpuid, in92 (IN AL,0x92: port 92, hooked by Parapet), incf8 (IN EAX,DX
 *   from 0xcf8, hooked), in80 (port 0x80, not hooked: control), rdmsr_efer (intercepted),
 *   rdmsr_star (not: control), apic (a store to the xAPIC TPR, a trapped page).
 *
 * apicbase: on every online CPU (interrupts off), IA32_APIC_BASE rewritten to move the xAPIC
 *   page to 0xfee10000, its ID and version registers read there, the MSR put back. The page
 *   lies in the 1 MiB range 0xfee00000-0xfeefffff that is reserved for interrupt messages:
 *   no RAM and no device decodes it (QEMU answers APIC reads across that whole range with
 *   the APIC of the CPU that reads), and only reads are made there (a write would be an
 *   interrupt message). Lines: apicbase.cpuN=wrmsr:ok|fault moved:MSR id:ID version:V
 *   restored:MSR.
 */
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/io.h>
#include <linux/irqflags.h>
#include <linux/kdebug.h>
#include <linux/kernel.h>
#include <linux/notifier.h>
#include <linux/smp.h>
#include <asm/apic.h>
#include <asm/debugreg.h>
#include <asm/desc.h>
#include <asm/msr.h>
#include <asm/nmi.h>
#include <asm/processor-flags.h>

#include "conform.h"

#define CF_NMI_WINDOW_US 20000 /* how long the handler waits for the NMI it sent */
#define CF_NMI_WAIT_MS 1000    /* how long the probe waits for both NMIs */
#define CF_APIC_MOVED 0xfee10000ul

/* ---- nmi ---------------------------------------------------------------------------- */

int cf_nmi_nested; /* counted by cf_nmi_stub (conform_asm.S) */
static int cf_nmi_armed_cpu = -1;
static int cf_nmi_calls, cf_nmi_depth, cf_nmi_max_depth;
static gate_desc cf_idt[IDT_ENTRIES] __aligned(PAGE_SIZE);
static struct desc_ptr cf_idt_private, cf_idt_linux;

static int cf_nmi_handler(unsigned int type, struct pt_regs *regs)
{
	int depth, i;

	if (READ_ONCE(cf_nmi_armed_cpu) != smp_processor_id())
		return NMI_DONE;
	depth = ++cf_nmi_depth;
	if (depth > cf_nmi_max_depth)
		cf_nmi_max_depth = depth;
	if (++cf_nmi_calls == 1) {
		native_load_idt(&cf_idt_private);
		apic->send_IPI(smp_processor_id(), NMI_VECTOR);
		for (i = 0; i < CF_NMI_WINDOW_US && !READ_ONCE(cf_nmi_nested); i++)
			udelay(1);
		native_load_idt(&cf_idt_linux);
		if (READ_ONCE(cf_nmi_nested) && cf_nmi_max_depth < 2)
			cf_nmi_max_depth = 2; /* the stub ran inside this call */
	}
	cf_nmi_depth--;
	return NMI_HANDLED;
}

static int cf_nmi_on_cpu0(void *arg)
{
	struct seq_buf *out = arg;
	int ms;

	/* The same IDT as Linux's but for vector 2; prepared here, loaded in the handler. */
	store_idt(&cf_idt_linux);
	memcpy(cf_idt, (void *)cf_idt_linux.address, min_t(size_t, cf_idt_linux.size + 1, sizeof(cf_idt)));
	pack_gate(&cf_idt[NMI_VECTOR], GATE_INTERRUPT, (unsigned long)cf_nmi_stub, 0, 0, __KERNEL_CS);
	cf_idt_private.size = cf_idt_linux.size;
	cf_idt_private.address = (unsigned long)cf_idt;

	preempt_disable();
	WRITE_ONCE(cf_nmi_nested, 0);
	cf_nmi_calls = cf_nmi_depth = cf_nmi_max_depth = 0;
	WRITE_ONCE(cf_nmi_armed_cpu, smp_processor_id());
	apic->send_IPI(smp_processor_id(), NMI_VECTOR);
	for (ms = 0; ms < CF_NMI_WAIT_MS && READ_ONCE(cf_nmi_calls) + READ_ONCE(cf_nmi_nested) < 2; ms++)
		mdelay(1);
	mdelay(20); /* a third NMI, if any, would come by now */
	WRITE_ONCE(cf_nmi_armed_cpu, -1);
	preempt_enable();

	seq_buf_printf(out, "nmi.handler_calls=%d\n", READ_ONCE(cf_nmi_calls));
	seq_buf_printf(out, "nmi.nested_in_handler=%d\n", READ_ONCE(cf_nmi_nested));
	seq_buf_printf(out, "nmi.max_depth=%d\n", cf_nmi_max_depth);
	seq_buf_printf(out, "nmi.total=%d\n", READ_ONCE(cf_nmi_calls) + READ_ONCE(cf_nmi_nested));
	return 0;
}

void cf_nmi(struct seq_buf *out)
{
	int err = smp_call_on_cpu(0, cf_nmi_on_cpu0, out, false);

	if (err)
		seq_buf_printf(out, "nmi=error: cannot run on cpu0 (%d)\n", err);
}

/* ---- step --------------------------------------------------------------------------- */

static bool cf_step_armed;
static int cf_step_hits;
static unsigned long cf_step_ip, cf_step_dr6;

static int cf_step_notify(struct notifier_block *nb, unsigned long val, void *data)
{
	struct die_args *args = data;
	unsigned long ip = args->regs->ip, *dr6 = (unsigned long *)args->err;

	if (val != DIE_DEBUG || !READ_ONCE(cf_step_armed) || ip < (unsigned long)cf_step_text_start ||
	    ip >= (unsigned long)cf_step_text_end)
		return NOTIFY_DONE;
	if (cf_step_hits++ == 0) {
		cf_step_ip = ip;
		cf_step_dr6 = *dr6;
	}
	args->regs->flags &= ~X86_EFLAGS_TF;
	*dr6 &= ~DR_STEP; /* consumed */
	return NOTIFY_STOP;
}

static struct notifier_block cf_step_nb = {
	.notifier_call = cf_step_notify,
	.priority = INT_MAX,
};

struct cf_step_probe {
	const char *name;
	const u8 *insn;
	void (*run)(void __iomem *apic, u32 tpr);
};

static void cf_step_run_nop(void __iomem *a, u32 t)
{
	cf_step_nop();
}
static void cf_step_run_cpuid(void __iomem *a, u32 t)
{
	cf_step_cpuid();
}
static void cf_step_run_in92(void __iomem *a, u32 t)
{
	cf_step_in92();
}
static void cf_step_run_incf8(void __iomem *a, u32 t)
{
	cf_step_incf8();
}
static void cf_step_run_in80(void __iomem *a, u32 t)
{
	cf_step_in80();
}
static void cf_step_run_rdmsr_efer(void __iomem *a, u32 t)
{
	cf_step_rdmsr_efer();
}
static void cf_step_run_rdmsr_star(void __iomem *a, u32 t)
{
	cf_step_rdmsr_star();
}

static const struct cf_step_probe cf_step_probes[] = {
	{ "nop", cf_step_nop_insn, cf_step_run_nop },
	{ "cpuid", cf_step_cpuid_insn, cf_step_run_cpuid },
	{ "in92", cf_step_in92_insn, cf_step_run_in92 },
	{ "incf8", cf_step_incf8_insn, cf_step_run_incf8 },
	{ "in80", cf_step_in80_insn, cf_step_run_in80 },
	{ "rdmsr_efer", cf_step_rdmsr_efer_insn, cf_step_run_rdmsr_efer },
	{ "rdmsr_star", cf_step_rdmsr_star_insn, cf_step_run_rdmsr_star },
	{ "apic", cf_step_apic_insn, cf_step_apic },
};

static int cf_step_on_cpu0(void *arg)
{
	struct seq_buf *out = arg;
	void __iomem *page = NULL;
	unsigned long flags;
	unsigned int i;
	u64 base;
	u32 tpr = 0;

	rdmsrl(MSR_IA32_APICBASE, base);
	if (!(base & X2APIC_ENABLE))
		page = ioremap(base & MSR_IA32_APICBASE_BASE, PAGE_SIZE);
	for (i = 0; i < ARRAY_SIZE(cf_step_probes); i++) {
		const struct cf_step_probe *p = &cf_step_probes[i];

		if (p->run == cf_step_apic && !page) {
			seq_buf_printf(out, "step.apic=not-run: no xAPIC page (x2APIC mode)\n");
			continue;
		}
		local_irq_save(flags);
		if (page)
			tpr = readl(page + 0x80); /* the store writes the TPR's own value */
		cf_step_hits = 0;
		WRITE_ONCE(cf_step_armed, true);
		p->run(page, tpr);
		WRITE_ONCE(cf_step_armed, false);
		local_irq_restore(flags);
		if (!cf_step_hits)
			seq_buf_printf(out, "step.%s=no-debug-exception\n", p->name);
		else
			seq_buf_printf(out, "step.%s=%+ld dr6=%lx hits=%d\n", p->name,
			    (long)(cf_step_ip - (unsigned long)p->insn), cf_step_dr6, cf_step_hits);
	}
	if (page)
		iounmap(page);
	return 0;
}

void cf_step(struct seq_buf *out)
{
	int err = smp_call_on_cpu(0, cf_step_on_cpu0, out, false);

	if (err)
		seq_buf_printf(out, "step=error: cannot run on cpu0 (%d)\n", err);
}

/* ---- apicbase ----------------------------------------------------------------------- */

struct cf_apicbase_job {
	void __iomem *moved;
	u64 orig, moved_msr, restored;
	u32 id, version;
	int err;
};

static void cf_apicbase_on_cpu(void *arg)
{
	struct cf_apicbase_job *j = arg;
	unsigned long flags;

	local_irq_save(flags);
	rdmsrl(MSR_IA32_APICBASE, j->orig);
	j->moved_msr = j->restored = 0;
	j->id = j->version = 0;
	j->err = wrmsrl_safe(MSR_IA32_APICBASE, (j->orig & ~MSR_IA32_APICBASE_BASE) | CF_APIC_MOVED);
	if (!j->err) {
		rdmsrl(MSR_IA32_APICBASE, j->moved_msr);
		j->id = readl(j->moved + APIC_ID);
		j->version = readl(j->moved + APIC_LVR);
		wrmsrl(MSR_IA32_APICBASE, j->orig);
	}
	rdmsrl(MSR_IA32_APICBASE, j->restored);
	local_irq_restore(flags);
}

void cf_apicbase(struct seq_buf *out)
{
	struct cf_apicbase_job j = { 0 };
	unsigned int cpu;
	u64 base;

	rdmsrl(MSR_IA32_APICBASE, base);
	if (base & X2APIC_ENABLE) {
		seq_buf_printf(out, "apicbase=not-run: the local APIC is in x2APIC mode (no xAPIC page)\n");
		return;
	}
	j.moved = ioremap(CF_APIC_MOVED, PAGE_SIZE);
	if (!j.moved) {
		seq_buf_printf(out, "apicbase=error: ioremap failed\n");
		return;
	}
	cpus_read_lock();
	for_each_online_cpu(cpu)
	{
		if (smp_call_function_single(cpu, cf_apicbase_on_cpu, &j, 1)) {
			seq_buf_printf(out, "apicbase.cpu%u=error: cannot run there\n", cpu);
			continue;
		}
		if (j.err)
			seq_buf_printf(out, "apicbase.cpu%u=wrmsr:fault restored:%llx\n", cpu, j.restored);
		else
			seq_buf_printf(out, "apicbase.cpu%u=wrmsr:ok moved:%llx id:%08x version:%08x restored:%llx\n",
			    cpu, j.moved_msr, j.id, j.version, j.restored);
	}
	cpus_read_unlock();
	iounmap(j.moved);
}

/* ---- set-up ------------------------------------------------------------------------- */

int cf_events_init(void)
{
	int err = register_die_notifier(&cf_step_nb);

	if (err)
		return err;
	err = register_nmi_handler(NMI_LOCAL, cf_nmi_handler, 0, "parapet_conform");
	if (err)
		unregister_die_notifier(&cf_step_nb);
	return err;
}

void cf_events_exit(void)
{
	unregister_nmi_handler(NMI_LOCAL, "parapet_conform");
	unregister_die_notifier(&cf_step_nb);
}
