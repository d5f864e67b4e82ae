/*
 * AMD-V: enabling SVM, the VMCB, and the run loop that turns each #VMEXIT into a normalised
 * exit for vmm_dispatch(). Nothing else lives here.
 */
#include "vmm/svm/svm.h"
#include "guest/linux.h"
#include "vmm/svm/vmcb.h"
#include "vmm/apic.h"
#include "vmm/cpus.h"
#include "vmm/debug.h"
#include "vmm/io.h"
#include "core/cpu.h"
#include "core/lapic.h"
#include "core/pgalloc.h"
#include "core/panic.h"
#include "core/log.h"
#include "core/string.h"
#include "core/x86.h"

#define CPUID_8000000A_EDX_NP (1u << 0)

static u64 iopm_pa, msrpm_pa; /* shared by all CPUs */
static u64 npt_root;
static u32 ipi_log_budget = 256; /* the guest decides how many INIT/STARTUP it sends */

/* Parapet's single step over one guest instruction (vmm/nmi.h, NMI_STEP), per CPU: RFLAGS.TF
 * and the #DB intercept for one entry. What the guest had is kept to be given back. */
static struct step {
	bool armed;
	bool guest_tf; /* the guest's own TF was set: the trap is its too */
	u64 rip, dr6;
} steps[MAX_CPUS];

void svm_vmrun(u64 vmcb_pa, u64 gpr[16]);

void svm_check(void)
{
	u32 a, b, c, d;
	cpuid(0x80000001, 0, &a, &b, &c, &d);
	if (!(c & CPUID_80000001_ECX_SVM))
		panic("svm: this CPU has no AMD-V (SVM)");
	if (rdmsr(MSR_VM_CR) & VM_CR_SVMDIS)
		panic("svm: AMD-V is disabled by the firmware (VM_CR.SVMDIS)");
	cpuid(0x8000000A, 0, &a, &b, &c, &d);
	if (!(d & CPUID_8000000A_EDX_NP))
		panic("svm: this CPU has no nested paging");
	if (b < 2)
		panic("svm: only %u ASIDs", b);
}

static void msrpm_intercept(u8 *pm, u32 msr, bool reads)
{
	u32 off;
	if (msr <= 0x1FFF)
		off = 0;
	else if (msr >= 0xC0000000 && msr <= 0xC0001FFF)
		off = 0x800 * 8, msr -= 0xC0000000;
	else
		off = 0x1000 * 8, msr -= 0xC0010000;
	u32 bit = off + msr * 2;
	pm[bit / 8] |= (reads ? 3u : 2u) << (bit % 8); /* bit 0 read, bit 1 write */
}

/* The I/O permission bitmap follows the hooks (vmm/io.c); it is shared by all CPUs. */
static void svm_io_intercept(u16 base, u32 count, bool on)
{
	u8 *io = (u8 *)iopm_pa;
	for (u32 p = base; p < (u32)base + count && p < 0x10000; p++) {
		if (on)
			__atomic_fetch_or(&io[p / 8], (u8)(1u << (p % 8)), __ATOMIC_SEQ_CST);
		else
			__atomic_fetch_and(&io[p / 8], (u8) ~(1u << (p % 8)), __ATOMIC_SEQ_CST);
	}
}

static void build_bitmaps(void)
{
	iopm_pa = pgalloc(3);
	io_set_intercept(svm_io_intercept);

	msrpm_pa = pgalloc(2);
	static const u32 msrs[] = { MSR_EFER, MSR_SMM_BASE, MSR_SMM_ADDR, MSR_SMM_MASK, MSR_VM_CR, MSR_IGNNE,
		MSR_SMM_CTL, MSR_VM_HSAVE_PA, MSR_SVM_KEY };
	for (unsigned i = 0; i < ARRAY_SIZE(msrs); i++)
		msrpm_intercept((u8 *)msrpm_pa, msrs[i], true);
	msrpm_intercept((u8 *)msrpm_pa, MSR_APIC_BASE, false); /* vmm/apic.c */
	msrpm_intercept((u8 *)msrpm_pa, MSR_X2APIC_ICR, false);
	for (u32 msr = 0x82F; msr <= 0x837; msr++)
		if (apic_lvt_msr(msr))
			msrpm_intercept((u8 *)msrpm_pa, msr, false);
}

static void seg(struct vmcb_seg *s, u16 sel, u16 attrib, u64 base)
{
	*s = (struct vmcb_seg){ sel, attrib, 0xFFFF, base };
}

/* Real mode at sel:ip with CS's base `base` (sel * 16, or the reset vector's 0xFFFF0000). */
static void set_real_mode(struct vmcb *vmcb, u16 sel, u64 base, u16 ip, u64 cr0, u16 sp)
{
	seg(&vmcb->cs, sel, 0x9B, base);
	seg(&vmcb->ds, 0, 0x93, 0);
	seg(&vmcb->es, 0, 0x93, 0);
	seg(&vmcb->ss, 0, 0x93, 0);
	seg(&vmcb->fs, 0, 0x93, 0);
	seg(&vmcb->gs, 0, 0x93, 0);
	seg(&vmcb->ldtr, 0, 0x82, 0);
	seg(&vmcb->tr, 0, 0x8B, 0);
	vmcb->gdtr = (struct vmcb_seg){ 0, 0, 0xFFFF, 0 };
	vmcb->idtr = (struct vmcb_seg){ 0, 0, 0x3FF, 0 };
	vmcb->cpl = 0;
	vmcb->efer = EFER_SVME;
	vmcb->cr0 = cr0;
	vmcb->cr3 = 0;
	vmcb->cr4 = 0;
	vmcb->dr6 = 0xFFFF0FF0;
	vmcb->dr7 = 0x400;
	vmcb->rflags = 0x2;
	vmcb->rip = ip;
	vmcb->rsp = sp;
	vmcb->rax = 0;
	vmcb->g_pat = 0x0007040600070406ull; /* the power-on PAT */
}

/*
 * The processor state after INIT (Intel SDM vol. 3 table 10-1, AMD APM vol. 2 §14.1.3), in
 * real mode at sel:ip: general registers 0 but EDX (the processor signature), CR0 with CD
 * and NW, no paging, EFER, debug registers, the syscall MSRs and the segments VMLOAD
 * carries reset, TLB flushed. x87/SSE state and MTRRs are kept, as INIT keeps them.
 */
static void reset_cpu(struct vcpu *v, struct vmcb *vmcb, u64 vmcb_pa, u16 sel, u64 base, u16 ip)
{
	u32 a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	memset(v->gpr, 0, sizeof(v->gpr));
	v->gpr[RDX] = a;
	v->efer = 0;
	v->inject.valid = false;
	v->nmi = (struct vnmi){ 0 }; /* INIT: no NMI in service, none latched */
	steps[v->id].armed = false;
	vmcb->intercept3 &= ~INTERCEPT_IRET;
	vmcb->intercept_exceptions = 0;
	set_real_mode(vmcb, sel, base, ip, CR0_CD | CR0_NW | CR0_ET, 0);
	vmcb->cr2 = 0;
	vmcb->star = vmcb->lstar = vmcb->cstar = vmcb->sfmask = vmcb->kernel_gs_base = 0;
	vmcb->sysenter_cs = vmcb->sysenter_esp = vmcb->sysenter_eip = 0;
	vmcb->eventinj = 0;
	vmcb->interrupt_shadow = 0;
	vmcb->tlb_control = 1; /* flush this ASID's translations on entry */
	__asm__ volatile("vmload" : : "a"(vmcb_pa) : "memory");
	__asm__ volatile("mov %0, %%dr0; mov %0, %%dr1; mov %0, %%dr2; mov %0, %%dr3" : : "r"(0ull));
	if (read_cr4() & CR4_OSXSAVE)
		xsetbv(0, 1); /* XCR0: x87 only */
}

/* A fresh start at `s` (Parapet's first entry, or after the preboot handoff): the INIT state,
 * but with caches on as firmware leaves them, then real mode at cs:ip with the stack under
 * 0000:7C00, or Linux's 32-bit entry (guest/linux.h) with flat 4 GiB segments. */
static void start_at(struct vcpu *v, struct vmcb *vmcb, u64 vmcb_pa, const struct guest_start *s)
{
	reset_cpu(v, vmcb, vmcb_pa, s->cs, (u64)s->cs << 4, s->ip);
	vmcb->cr0 = CR0_ET;
	vmcb->rsp = 0x7C00;
	if (s->linux32) {
		struct vmcb_seg code = { LX_BOOT_CS, 0xC9B, 0xFFFFFFFF, 0 },
				data = { LX_BOOT_DS, 0xC93, 0xFFFFFFFF, 0 };
		vmcb->cs = code;
		vmcb->ds = vmcb->es = vmcb->ss = vmcb->fs = vmcb->gs = data;
		vmcb->gdtr = (struct vmcb_seg){ 0, 0, 4 * 8 - 1, s->gdt };
		vmcb->cr0 = CR0_PE | CR0_ET;
		vmcb->rip = s->eip;
		vmcb->rsp = 0;
		v->gpr[RDX] = 0;
		v->gpr[RSI] = s->esi;
		__asm__ volatile("vmload" : : "a"(vmcb_pa) : "memory"); /* FS, GS as above */
	} else if (s->flat32) {
		/* ACPI §4.8.3.2.1 / FACS X_Firmware_Waking_Vector: flat 32-bit segments, no paging; the
		 * selectors are undefined there: the guest loads its own GDT first. */
		struct vmcb_seg code = { 0x08, 0xC9B, 0xFFFFFFFF, 0 }, data = { 0x10, 0xC93, 0xFFFFFFFF, 0 };
		vmcb->cs = code;
		vmcb->ds = vmcb->es = vmcb->ss = vmcb->fs = vmcb->gs = data;
		vmcb->cr0 = CR0_PE | CR0_ET;
		vmcb->rip = s->eip;
		vmcb->rsp = 0;
		__asm__ volatile("vmload" : : "a"(vmcb_pa) : "memory");
	}
	LOG("svm: cpu%u: entering the guest at %x:%x (%s)\n", v->id,
	    s->linux32  ? LX_BOOT_CS
	    : s->flat32 ? 0x08
			: s->cs,
	    s->linux32 || s->flat32 ? s->eip : s->ip,
	    s->linux32  ? "Linux 32-bit entry"
	    : s->flat32 ? "32-bit protected mode"
			: "real mode");
}

/* Parapet's wait-for-SIPI: the processor sleeps in the host until an NMI brings a STARTUP. */
static void wait_for_sipi(struct vcpu *v, struct vmcb *vmcb, u64 vmcb_pa)
{
	u8 vec;
	while (!apic_take_sipi(v, &vec)) {
		if (cpu_wait_nmi())
			apic_nmi_was_kick(v); /* nothing runs here for a guest NMI to reach */
		cpus_park_if_frozen(v);
	}
	reset_cpu(v, vmcb, vmcb_pa, (u16)(vec << 8), (u64)vec << 12, 0);
	if (log_budget_take(&ipi_log_budget))
		LOG("svm: cpu%u: STARTUP: entering the guest at %x:0000 (real mode)\n", v->id, vec << 8);
}

static void setup_vmcb(struct vmcb *vmcb, u64 npt_root)
{
	vmcb->intercept3 = INTERCEPT_NMI | INTERCEPT_CPUID | INTERCEPT_INVLPGA | INTERCEPT_IOIO_PROT |
			   INTERCEPT_MSR_PROT | INTERCEPT_SHUTDOWN;
	vmcb->intercept4 = INTERCEPT_VMRUN | INTERCEPT_VMMCALL | INTERCEPT_VMLOAD | INTERCEPT_VMSAVE | INTERCEPT_STGI |
			   INTERCEPT_CLGI | INTERCEPT_SKINIT;
	vmcb->iopm_base_pa = iopm_pa;
	vmcb->msrpm_base_pa = msrpm_pa;
	vmcb->asid = 1;
	vmcb->np_enable = 1;
	vmcb->n_cr3 = npt_root;
}

/* #VMEXIT -> normalised exit. */
static void translate_exit(struct vmcb *vmcb, struct vm_exit *e)
{
	u64 code = vmcb->exitcode;
	*e = (struct vm_exit){ .raw = code };
	switch (code) {
	case SVM_EXIT_CPUID:
		e->reason = EXIT_CPUID;
		break;
	case SVM_EXIT_MSR:
		e->reason = vmcb->exitinfo1 ? EXIT_WRMSR : EXIT_RDMSR;
		break;
	case SVM_EXIT_IOIO: {
		u64 i = vmcb->exitinfo1;
		e->reason = EXIT_IO;
		e->next_rip = vmcb->exitinfo2;
		e->io = (struct io_exit){
			.port = (u16)(i >> IOIO_PORT_SHIFT),
			.size = (i >> IOIO_SZ_SHIFT) & 1   ? 1
				: (i >> IOIO_SZ_SHIFT) & 2 ? 2
							   : 4,
			.addr_size = (i >> IOIO_A_SHIFT) & 1   ? 2
				     : (i >> IOIO_A_SHIFT) & 2 ? 4
							       : 8,
			.in = i & IOIO_TYPE_IN,
			.string = i & IOIO_STR,
			.rep = i & IOIO_REP,
		};
		break;
	}
	case SVM_EXIT_VMMCALL:
		e->reason = EXIT_VMMCALL;
		break;
	case SVM_EXIT_VMRUN:
	case SVM_EXIT_VMLOAD:
	case SVM_EXIT_VMSAVE:
	case SVM_EXIT_STGI:
	case SVM_EXIT_CLGI:
	case SVM_EXIT_SKINIT:
	case SVM_EXIT_INVLPGA:
		e->reason = EXIT_VIRT_INSN;
		break;
	case SVM_EXIT_NPF:
		e->reason = EXIT_NPF;
		e->npf.gpa = vmcb->exitinfo2;
		e->npf.access = vmcb->exitinfo1 & NPF_ERR_FETCH   ? NPF_FETCH
				: vmcb->exitinfo1 & NPF_ERR_WRITE ? NPF_WRITE
								  : NPF_READ;
		e->npf.in_walk = vmcb->exitinfo1 & NPF_ERR_IN_WALK;
		break;
	case SVM_EXIT_SHUTDOWN:
		e->reason = EXIT_SHUTDOWN;
		break;
	case SVM_EXIT_NMI:
		e->reason = EXIT_NMI;
		break;
	case SVM_EXIT_IRET:
		e->reason = EXIT_IRET;
		break;
	default:
		e->reason = EXIT_OTHER;
	}
}

static void get_seg(struct vseg *d, const struct vmcb_seg *s)
{
	*d = (struct vseg){ s->base, s->limit, s->sel, s->attrib };
}

static u64 read_dr(unsigned n)
{
	u64 x = 0;
	switch (n) {
	case 0:
		__asm__ volatile("mov %%dr0, %0" : "=r"(x));
		break;
	case 1:
		__asm__ volatile("mov %%dr1, %0" : "=r"(x));
		break;
	case 2:
		__asm__ volatile("mov %%dr2, %0" : "=r"(x));
		break;
	case 3:
		__asm__ volatile("mov %%dr3, %0" : "=r"(x));
		break;
	}
	return x;
}

/* Run the instruction at RIP and exit after it: TF makes the processor trap after it (after an
 * IRET too: the trap follows an instruction that began with TF set), the #DB intercept makes
 * the trap an exit. */
static void step_begin(struct vcpu *v, struct vmcb *vmcb)
{
	steps[v->id] = (struct step){ true, (vmcb->rflags & RFLAGS_TF) != 0, vmcb->rip, vmcb->dr6 };
	vmcb->rflags |= RFLAGS_TF;
	vmcb->intercept_exceptions |= INTERCEPT_EXCEPTION(1);
}

/* The first exit after step_begin, before the guest state is read: Parapet's TF and DR6.BS
 * are taken out again. True when the exit is the step's #DB; *raised then holds the DR6 bits
 * that are the guest's own (its TF was set too, or a breakpoint of its matched). */
static bool step_end(struct vcpu *v, struct vmcb *vmcb, u32 *raised)
{
	struct step *s = &steps[v->id];
	if (!s->armed)
		return false;
	s->armed = false;
	if (vmcb->rip == s->rip && !s->guest_tf)
		vmcb->rflags &= ~RFLAGS_TF; /* the instruction has not run: the TF is Parapet's */
	if (vmcb->exitcode != SVM_EXIT_EXCP_DB)
		return false;
	*raised = (u32)(vmcb->dr6 & ~s->dr6) & (DR6_B(0) | DR6_B(1) | DR6_B(2) | DR6_B(3));
	if (s->guest_tf && (vmcb->dr6 & DR6_BS))
		*raised |= DR6_BS;
	vmcb->dr6 = s->dr6;
	return true;
}

/*
 * The events of the next entry: the handler's exception, else the event the exit interrupted
 * (EXITINTINFO, delivered again), and the guest's NMI when it can take one (vmm/nmi.h).
 * EVENTINJ and EXITINTINFO share one format.
 */
static void set_events(struct vcpu *v, struct vmcb *vmcb)
{
	u64 inj = 0;
	if (v->inject.valid) {
		if (v->inject.has_cr2)
			vmcb->cr2 = v->inject.cr2;
		inj = EVENT_VALID | EVENT_TYPE_EXCEPTION | v->inject.vector |
		      (v->inject.has_error ? EVENT_ERR_VALID | ((u64)v->inject.error << 32) : 0);
		v->inject.valid = false;
	} else if (vmcb->exitintinfo & EVENT_VALID) {
		inj = vmcb->exitintinfo;
	}
	vmcb->intercept_exceptions &= ~INTERCEPT_EXCEPTION(1);
	switch (nmi_entry(&v->nmi, v->rip, inj != 0)) {
	case NMI_INJECT:
		inj = EVENT_VALID | EVENT_TYPE_NMI | VEC_NMI;
		break;
	case NMI_STEP:
		step_begin(v, vmcb);
		break;
	case NMI_KICK:
		apic_kick(v); /* taken after the injected event: an exit at once */
		break;
	case NMI_NONE:
		break;
	}
	vmcb->eventinj = inj;
	if (nmi_iret_intercept(&v->nmi))
		vmcb->intercept3 |= INTERCEPT_IRET;
	else
		vmcb->intercept3 &= ~INTERCEPT_IRET;
}

static __noreturn void invalid_state(struct vmcb *vmcb)
{
	panic(
	    "svm: VMRUN refused the guest state (VMEXIT_INVALID): cs=%x:%lx rip=%lx cr0=%lx cr3=%lx cr4=%lx efer=%lx rflags=%lx",
	    vmcb->cs.sel, vmcb->cs.base, vmcb->rip, vmcb->cr0, vmcb->cr3, vmcb->cr4, vmcb->efer, vmcb->rflags);
}

static __noreturn void run(struct vcpu *v, struct vmcb *vmcb, u64 vmcb_pa)
{
	for (;;) {
		if (v->waiting)
			wait_for_sipi(v, vmcb, vmcb_pa);
		if (cpus_guest_enter(v))
			vmcb->tlb_control = 1; /* a trap changed (cpus_flush_stage2): flush on this entry */
		svm_vmrun(vmcb_pa, v->gpr);
		cpus_guest_exit(v);
		if (vmcb->exitcode == SVM_EXIT_INVALID)
			invalid_state(vmcb);
		vmcb->tlb_control = 0;
		if (vmcb->exitcode == SVM_EXIT_NMI)
			cpu_take_nmi(); /* the NMI stays pending after the exit: take it here */
		u32 raised = 0;
		bool stepped = step_end(v, vmcb, &raised);

		v->rip = vmcb->rip;
		v->rflags = vmcb->rflags;
		v->gpr[RAX] = vmcb->rax;
		v->gpr[RSP] = vmcb->rsp;
		v->cr0 = vmcb->cr0;
		v->cr4 = vmcb->cr4;
		v->cpl = vmcb->cpl;
		v->efer = vmcb->efer & ~EFER_SVME;
		v->cr2 = vmcb->cr2;
		v->cr3 = vmcb->cr3;
		v->dr6 = vmcb->dr6;
		v->dr7 = vmcb->dr7;
		for (unsigned n = 0; n < 4; n++) /* not in the VMCB: live, the guest's */
			v->dr[n] = (v->dr7 & 0xFF) ? read_dr(n) : 0;
		get_seg(&v->seg[SEG_ES], &vmcb->es);
		get_seg(&v->seg[SEG_CS], &vmcb->cs);
		get_seg(&v->seg[SEG_SS], &vmcb->ss);
		get_seg(&v->seg[SEG_DS], &vmcb->ds);
		translate_exit(vmcb, &v->exit);
		if (stepped)
			v->exit = (struct vm_exit){ .reason = EXIT_STEP, .raw = vmcb->exitcode, .step = { raised } };
		if (v->exit.reason == EXIT_NPF || (v->exit.reason == EXIT_IO && v->exit.io.string)) {
			/* #VMEXIT does not save FS and GS; VMSAVE does (the host never loads its own). */
			__asm__ volatile("vmsave" : : "a"(vmcb_pa) : "memory");
			get_seg(&v->seg[SEG_FS], &vmcb->fs);
			get_seg(&v->seg[SEG_GS], &vmcb->gs);
		}

		vmm_dispatch(v);

		if (v->rip != vmcb->rip)
			vmcb->interrupt_shadow = 0; /* the intercepted instruction completed */
		vmcb->rip = v->rip;
		vmcb->rflags = v->rflags;
		vmcb->rax = v->gpr[RAX];
		vmcb->rsp = v->gpr[RSP];
		vmcb->dr6 = v->dr6;
		/* SVME must stay set in the real EFER: the guest's own view is v->efer. SMM entry in the
		 * guest clears it in the saved state; restoring it here keeps VMRUN valid. */
		vmcb->efer = v->efer | EFER_SVME;
		set_events(v, vmcb);
		vmcb->clean = 0;
		if (v->restart) {
			start_at(v, vmcb, vmcb_pa, v->restart);
			v->restart = NULL;
		}
		cpus_park_if_frozen(v); /* another CPU resets, powers off or sleeps */
		if (apic_mail_posted(v) && apic_take_init(v)) {
			if (log_budget_take(&ipi_log_budget))
				LOG("svm: cpu%u: INIT%s\n", v->id,
				    v->bsp ? ": restarting at the reset vector" : "; waiting for STARTUP");
			if (v->bsp)
				reset_cpu(v, vmcb, vmcb_pa, 0xF000, 0xFFFF0000, 0xFFF0);
			/* else v->waiting: wait_for_sipi() resets it when its STARTUP comes */
		}
	}
}

void svm_init(u64 npt)
{
	build_bitmaps();
	npt_root = npt;
}

/* Enable SVM on this CPU and make its VMCB. The host runs with GIF clear from here on:
 * interrupts, NMIs and SMIs wait for the guest (core/isr.S opens it briefly for NMIs). */
static struct vmcb *enable(struct vcpu *v, u64 *vmcb_pa)
{
	if (!v->hw[0]) { /* the first start; after S3 the same pages serve again */
		v->hw[0] = pgalloc(1);
		v->hw[1] = pgalloc(1);
		setup_vmcb((struct vmcb *)v->hw[0], npt_root);
	}
	*vmcb_pa = v->hw[0];
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
	__asm__ volatile("clgi");
	wrmsr(MSR_VM_HSAVE_PA, v->hw[1]);
	return (struct vmcb *)*vmcb_pa;
}

__noreturn void svm_run_bsp(struct vcpu *v, const struct guest_start *start)
{
	u64 vmcb_pa;
	struct vmcb *vmcb = enable(v, &vmcb_pa);
	/* Its VMLOAD loads the guest's FS, GS, TR, LDTR and syscall MSRs; the host never uses them. */
	start_at(v, vmcb, vmcb_pa, start);
	run(v, vmcb, vmcb_pa);
}

__noreturn void svm_run_ap(struct vcpu *v)
{
	u64 vmcb_pa;
	struct vmcb *vmcb = enable(v, &vmcb_pa);
	run(v, vmcb, vmcb_pa); /* v->waiting: it waits for the guest's STARTUP first */
}
