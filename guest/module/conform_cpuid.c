// SPDX-License-Identifier: GPL-2.0
/*
 * Conformance probe, family "cpuid": on every online CPU, in a kworker bound to it,
 *   cpuid.cpuN.LEAF.SUB=EAX EBX ECX EDX   every basic leaf (0 .. CPUID.0:EAX), the hypervisor
 *                       leaf 0x40000000 and every extended leaf (0x80000000 .. 0x80000000:EAX);
 *                       sub-leaf 0 always, sub-leaves 1..7 (1..63 for 0xd) when they differ
 *                       from sub-leaf 0 (a leaf without sub-leaves ignores ECX) and are valid
 *                       (not all zero but for ECX echoing the sub-leaf)
 *   cpuid.cpuN.apic_id=leaf1:A leafb:B reg:R   the initial APIC IDs (CPUID.1:EBX[31:24],
 *                       CPUID.0xB:EDX) and the APIC ID register, as Linux reads it
 *   cpuid.cpuN.osxsave=cr4:C cpuid:X   CR4.OSXSAVE as Linux set it and CPUID.1:ECX.OSXSAVE;
 *   cpuid.cpuN.osxsave_cleared=...     the same with CR4.OSXSAVE cleared for the CPUID
 *   cpuid.cpuN.ospke=...,  ospke_cleared=...   CR4.PKE and CPUID.7.0:ECX.OSPKE likewise, or
 *                       not-run when the CPU has no PKU
 *   cpuid.cpuN.xsave=xcr0:X size:S size_all:A   CPUID.0xD.0:EBX (XSAVE size for the XCR0 in
 *                       force) and .1:EBX; then with XCR0 = x87|SSE for the CPUID
 * These bits follow the CPU's state: a CPUID answered from anything but the guest's own
 * CR4 and XCR0 shows here.
 *
 * Masked, as Parapet hides them on purpose (DESIGN.md §4, invariant 2): CPUID.1:ECX.VMX (bit
 * 5), CPUID.0x80000001:ECX.SVM (bit 2) and the whole of leaf 0x8000000A (SVM features). The
 * masked values are printed as 0; nothing else is touched (the hypervisor-present bit,
 * CPUID.1:ECX[31], is what QEMU's -cpu gives both boots).
 *
 * Clearing CR4.OSXSAVE makes XSAVE, XRSTOR and XGETBV #UD: it is cleared with interrupts off,
 * for one CPUID, and nothing in between touches the FPU (an NMI handler does not). XCR0 is
 * changed inside kernel_fpu_begin()/end(), which saved the task's registers first.
 */
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/irqflags.h>
#include <linux/kernel.h>
#include <linux/smp.h>
#include <asm/apic.h>
#include <asm/fpu/api.h>
#include <asm/fpu/xcr.h>
#include <asm/processor-flags.h>
#include <asm/special_insns.h>

#include "conform.h"

#define CPUID_1_ECX_VMX BIT(5)
#define CPUID_1_ECX_OSXSAVE BIT(27)
#define CPUID_7_ECX_PKU BIT(3)
#define CPUID_7_ECX_OSPKE BIT(4)
#define CPUID_80000001_ECX_SVM BIT(2)
#define XCR0_X87_SSE 0x3ull

struct cf_regs4 {
	u32 a, b, c, d;
};

static struct cf_regs4 cf_cpuid_raw(u32 leaf, u32 sub)
{
	struct cf_regs4 r;

	asm volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(sub));
	return r;
}

/* What Parapet hides on purpose, taken out of both sides of the comparison. */
static struct cf_regs4 cf_cpuid_masked(u32 leaf, u32 sub)
{
	struct cf_regs4 r = cf_cpuid_raw(leaf, sub);

	if (leaf == 1)
		r.c &= ~CPUID_1_ECX_VMX;
	if (leaf == 0x80000001)
		r.c &= ~CPUID_80000001_ECX_SVM;
	if (leaf == 0x8000000a)
		r = (struct cf_regs4){ 0 };
	return r;
}

static unsigned long cf_read_cr4(void)
{
	unsigned long cr4;

	asm volatile("mov %%cr4, %0" : "=r"(cr4));
	return cr4;
}

static void cf_write_cr4(unsigned long cr4)
{
	asm volatile("mov %0, %%cr4" : : "r"(cr4) : "memory");
}

struct cf_cpuid_job {
	struct seq_buf *out;
	unsigned int cpu;
};

static void cf_dump_leaf(struct seq_buf *out, unsigned int cpu, u32 leaf)
{
	struct cf_regs4 r0 = cf_cpuid_masked(leaf, 0), r;
	u32 sub, last = leaf == 0xd ? 63 : 7;

	seq_buf_printf(out, "cpuid.cpu%u.%08x.0=%08x %08x %08x %08x\n", cpu, leaf, r0.a, r0.b, r0.c, r0.d);
	for (sub = 1; sub <= last; sub++) {
		r = cf_cpuid_masked(leaf, sub);
		if (!memcmp(&r, &r0, sizeof(r)))
			continue; /* ECX ignored: no sub-leaves */
		if (!r.a && !r.b && !r.d && (!r.c || r.c == sub))
			continue; /* an invalid sub-leaf (0xb echoes its number in ECX) */
		seq_buf_printf(out, "cpuid.cpu%u.%08x.%u=%08x %08x %08x %08x\n", cpu, leaf, sub, r.a, r.b, r.c, r.d);
	}
}

/*
 * CPUID.LEAF.0:ECX bit `bit` with CR4 bit `cr4_bit` as it is, then with it cleared for the
 * one CPUID (interrupts off; CR4 restored before they come back on).
 */
static void cf_cr4_follow(struct seq_buf *out, unsigned int cpu, const char *name, u32 leaf, u32 bit,
    unsigned long cr4_bit)
{
	unsigned long flags, cr4;
	u32 set, cleared;

	local_irq_save(flags);
	cr4 = cf_read_cr4();
	set = cf_cpuid_raw(leaf, 0).c & bit;
	cf_write_cr4(cr4 & ~cr4_bit);
	cleared = cf_cpuid_raw(leaf, 0).c & bit;
	cf_write_cr4(cr4);
	local_irq_restore(flags);
	seq_buf_printf(out, "cpuid.cpu%u.%s=cr4:%d cpuid:%d\n", cpu, name, !!(cr4 & cr4_bit), !!set);
	seq_buf_printf(out, "cpuid.cpu%u.%s_cleared=cr4:0 cpuid:%d\n", cpu, name, !!cleared);
}

static int cf_cpuid_on_cpu(void *arg)
{
	struct cf_cpuid_job *job = arg;
	struct seq_buf *out = job->out;
	unsigned int cpu = job->cpu;
	struct cf_regs4 r;
	u32 leaf, max;
	u64 xcr0;
	unsigned long flags;

	max = cf_cpuid_raw(0, 0).a;
	for (leaf = 0; leaf <= max && leaf < 0x100; leaf++)
		cf_dump_leaf(out, cpu, leaf);
	cf_dump_leaf(out, cpu, 0x40000000);
	max = cf_cpuid_raw(0x80000000, 0).a;
	for (leaf = 0x80000000; leaf <= max && leaf < 0x80000100; leaf++)
		cf_dump_leaf(out, cpu, leaf);

	seq_buf_printf(out, "cpuid.cpu%u.apic_id=leaf1:%u leafb:%u reg:%u\n", cpu, cf_cpuid_raw(1, 0).b >> 24,
	    cf_cpuid_raw(0, 0).a >= 0xb ? cf_cpuid_raw(0xb, 0).d : ~0u, read_apic_id());

	cf_cr4_follow(out, cpu, "osxsave", 1, CPUID_1_ECX_OSXSAVE, X86_CR4_OSXSAVE);
	if (cf_cpuid_raw(0, 0).a >= 7 && (cf_cpuid_raw(7, 0).c & CPUID_7_ECX_PKU))
		cf_cr4_follow(out, cpu, "ospke", 7, CPUID_7_ECX_OSPKE, X86_CR4_PKE);
	else
		seq_buf_printf(out, "cpuid.cpu%u.ospke=not-run: no PKU\n", cpu);

	if (!(cf_read_cr4() & X86_CR4_OSXSAVE)) {
		seq_buf_printf(out, "cpuid.cpu%u.xsave=not-run: CR4.OSXSAVE is clear\n", cpu);
		return 0;
	}
	xcr0 = xgetbv(0);
	seq_buf_printf(out, "cpuid.cpu%u.xsave=xcr0:%llx size:%u size_all:%u\n", cpu, xcr0, cf_cpuid_raw(0xd, 0).b,
	    cf_cpuid_raw(0xd, 1).b);
	kernel_fpu_begin();
	local_irq_save(flags);
	xsetbv(0, XCR0_X87_SSE);
	r = cf_cpuid_raw(0xd, 0);
	r.c = cf_cpuid_raw(0xd, 1).b;
	xsetbv(0, xcr0);
	local_irq_restore(flags);
	kernel_fpu_end();
	seq_buf_printf(out, "cpuid.cpu%u.xsave_x87_sse=xcr0:%llx size:%u size_all:%u\n", cpu, XCR0_X87_SSE, r.b, r.c);
	return 0;
}

void cf_cpuid(struct seq_buf *out)
{
	struct cf_cpuid_job job = { .out = out };
	unsigned int cpu;
	int err;

	seq_buf_printf(out, "cpuid.masked=1.0:ecx[5] 80000001.0:ecx[2] 8000000a.*\n");
	cpus_read_lock();
	for_each_online_cpu(cpu)
	{
		job.cpu = cpu;
		err = smp_call_on_cpu(cpu, cf_cpuid_on_cpu, &job, false);
		if (err)
			seq_buf_printf(out, "cpuid.cpu%u=error: %d\n", cpu, err);
	}
	cpus_read_unlock();
}
