/*
 * AMD-V: enabling SVM, the VMCB, loading architectural state into it, and the run loop that
 * turns each #VMEXIT into a normalised exit for vmm_dispatch(). Nothing else lives here.
 */
#include "vmm/svm/svm.h"
#include "vmm/svm/vmcb.h"
#include "vmm/apic.h"
#include "vmm/cpus.h"
#include "vmm/debug.h"
#include "vmm/io.h"
#include "core/cpu.h"
#include "core/pgalloc.h"
#include "core/panic.h"
#include "core/log.h"
#include "core/x86.h"

#define CPUID_8000000A_EDX_NP (1u << 0)

static u64 iopm_pa, msrpm_pa; /* shared by all CPUs */
static u64 stage2_root;

/* Parapet's single step over one guest instruction (vmm/nmi.h, NMI_STEP), per CPU: RFLAGS.TF
 * and the #DB intercept for one entry. What the guest had is kept to be given back. */
static struct step {
	bool armed;
	bool guest_tf; /* the guest's own TF was set: the trap is its too */
	u64 rip, dr6;
} steps[MAX_CPUS];

void svm_vmrun(u64 vmcb_pa, u64 gpr[16]);
bool svm_wait_nmi(void), svm_take_nmi(void); /* gif.S */
extern const char nmi_hlt[], nmi_hlt_end[], nmi_woken[], nmi_spin[], nmi_spin_end[], nmi_taken[];

static const char *check(void)
{
	u32 a, b, c, d;
	cpuid(0x80000000, 0, &a, &b, &c, &d);
	if (a < 0x8000000A)
		return "this CPU has no AMD-V (SVM)";
	cpuid(0x80000001, 0, &a, &b, &c, &d);
	if (!(c & CPUID_80000001_ECX_SVM))
		return "this CPU has no AMD-V (SVM)";
	if (rdmsr(MSR_VM_CR) & VM_CR_SVMDIS)
		return "AMD-V is disabled by the firmware (VM_CR.SVMDIS)";
	cpuid(0x8000000A, 0, &a, &b, &c, &d);
	if (!(d & CPUID_8000000A_EDX_NP))
		return "this CPU has no nested paging";
	if (b < 2)
		return "fewer than 2 ASIDs";
	return NULL;
}

static void msr_intercept(u32 msr, bool reads)
{
	u8 *pm = (u8 *)msrpm_pa;
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

static const struct cpu_nmi_window gif_windows[] = { { nmi_hlt, nmi_hlt_end, nmi_woken },
	{ nmi_spin, nmi_spin_end, nmi_taken } };

static void init(u64 root)
{
	iopm_pa = pgalloc(3);
	msrpm_pa = pgalloc(2);
	/* SVM's own MSRs: #GP, as on a CPU without SVM (vmm/msr.c). */
	static const u32 msrs[] = { MSR_VM_CR, MSR_IGNNE, MSR_SMM_CTL, MSR_VM_HSAVE_PA, MSR_SVM_KEY };
	for (unsigned i = 0; i < ARRAY_SIZE(msrs); i++)
		msr_intercept(msrs[i], true);
	stage2_root = root;
	cpu_nmi_windows(gif_windows, ARRAY_SIZE(gif_windows));
}

static void put_seg(struct vmcb_seg *d, const struct vseg *s)
{
	*d = (struct vmcb_seg){ s->sel, s->attr, s->limit, s->base };
}

/* Architectural state into the VMCB, and what INIT clears besides; VMLOAD takes FS, GS, TR,
 * LDTR and the syscall MSRs from it (the host never uses them). */
static void load(struct vcpu *v, const struct vstate *s)
{
	struct vmcb *vmcb = (struct vmcb *)v->hw[0];
	steps[v->id].armed = false;
	vmcb->intercept3 &= ~INTERCEPT_IRET;
	vmcb->intercept_exceptions = 0;
	put_seg(&vmcb->es, &s->seg[SEG_ES]);
	put_seg(&vmcb->cs, &s->seg[SEG_CS]);
	put_seg(&vmcb->ss, &s->seg[SEG_SS]);
	put_seg(&vmcb->ds, &s->seg[SEG_DS]);
	put_seg(&vmcb->fs, &s->seg[SEG_FS]);
	put_seg(&vmcb->gs, &s->seg[SEG_GS]);
	put_seg(&vmcb->ldtr, &s->ldtr);
	put_seg(&vmcb->tr, &s->tr);
	vmcb->gdtr = (struct vmcb_seg){ 0, 0, s->gdtr.limit, s->gdtr.base };
	vmcb->idtr = (struct vmcb_seg){ 0, 0, s->idtr.limit, s->idtr.base };
	vmcb->cpl = 0;
	vmcb->efer = s->efer | EFER_SVME;
	vmcb->cr0 = s->cr0;
	vmcb->cr2 = 0;
	vmcb->cr3 = s->cr3;
	vmcb->cr4 = s->cr4;
	vmcb->dr6 = s->dr6;
	vmcb->dr7 = s->dr7;
	vmcb->rflags = s->rflags;
	vmcb->rip = s->rip;
	vmcb->rsp = s->rsp;
	vmcb->rax = 0;
	vmcb->g_pat = s->pat;
	vmcb->star = vmcb->lstar = vmcb->cstar = vmcb->sfmask = vmcb->kernel_gs_base = 0;
	vmcb->sysenter_cs = vmcb->sysenter_esp = vmcb->sysenter_eip = 0;
	vmcb->eventinj = 0;
	vmcb->interrupt_shadow = 0;
	__asm__ volatile("vmload" : : "a"(v->hw[0]) : "memory");
}

static void flush_tlb(struct vcpu *v)
{
	((struct vmcb *)v->hw[0])->tlb_control = 1; /* this ASID's translations, on the next entry */
}

static void setup_vmcb(struct vmcb *vmcb)
{
	vmcb->intercept3 = INTERCEPT_NMI | INTERCEPT_CPUID | INTERCEPT_INVLPGA | INTERCEPT_IOIO_PROT |
			   INTERCEPT_MSR_PROT | INTERCEPT_SHUTDOWN;
	vmcb->intercept4 = INTERCEPT_VMRUN | INTERCEPT_VMMCALL | INTERCEPT_VMLOAD | INTERCEPT_VMSAVE | INTERCEPT_STGI |
			   INTERCEPT_CLGI | INTERCEPT_SKINIT;
	vmcb->iopm_base_pa = iopm_pa;
	vmcb->msrpm_base_pa = msrpm_pa;
	vmcb->asid = 1;
	vmcb->np_enable = 1;
	vmcb->n_cr3 = stage2_root;
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

static void put_changed_seg(struct vmcb_seg *d, const struct vseg *s, bool *changed)
{
	struct vmcb_seg n = { s->sel, s->attr, s->limit, s->base };
	if (d->sel != n.sel || d->attrib != n.attrib || d->limit != n.limit || d->base != n.base)
		*changed = true;
	*d = n;
}

static __noreturn void run(struct vcpu *v)
{
	struct vmcb *vmcb = (struct vmcb *)v->hw[0];
	u64 vmcb_pa = v->hw[0];
	for (;;) {
		vcpu_check_events(v);
		if (cpus_guest_enter(v))
			vmcb->tlb_control = 1; /* a trap changed (cpus_flush_stage2): flush on this entry */
		svm_vmrun(vmcb_pa, v->gpr);
		cpus_guest_exit(v);
		if (vmcb->exitcode == SVM_EXIT_INVALID)
			invalid_state(vmcb);
		vmcb->tlb_control = 0;
		if (vmcb->exitcode == SVM_EXIT_NMI)
			svm_take_nmi(); /* the NMI stays pending after the exit: take it here */
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
		bool fsgs = v->exit.reason == EXIT_NPF || (v->exit.reason == EXIT_IO && v->exit.io.string);
		if (fsgs) {
			/* #VMEXIT does not save FS and GS; VMSAVE does (the host never loads its own). */
			__asm__ volatile("vmsave" : : "a"(vmcb_pa) : "memory");
			get_seg(&v->seg[SEG_FS], &vmcb->fs);
			get_seg(&v->seg[SEG_GS], &vmcb->gs);
		}

		vmm_dispatch(v);

		/* Everything read above goes back: a handler's change is never dropped. */
		if (v->rip != vmcb->rip)
			vmcb->interrupt_shadow = 0; /* the intercepted instruction completed */
		vmcb->rip = v->rip;
		vmcb->rflags = v->rflags;
		vmcb->rax = v->gpr[RAX];
		vmcb->rsp = v->gpr[RSP];
		vmcb->cr0 = v->cr0;
		vmcb->cr4 = v->cr4;
		vmcb->cpl = v->cpl;
		vmcb->cr2 = v->cr2;
		vmcb->cr3 = v->cr3;
		vmcb->dr6 = v->dr6;
		vmcb->dr7 = v->dr7;
		/* SVME must stay set in the real EFER: the guest's own view is v->efer. SMM entry in the
		 * guest clears it in the saved state; restoring it here keeps VMRUN valid. */
		vmcb->efer = v->efer | EFER_SVME;
		put_seg(&vmcb->es, &v->seg[SEG_ES]);
		put_seg(&vmcb->cs, &v->seg[SEG_CS]);
		put_seg(&vmcb->ss, &v->seg[SEG_SS]);
		put_seg(&vmcb->ds, &v->seg[SEG_DS]);
		if (fsgs) {
			bool changed = false;
			put_changed_seg(&vmcb->fs, &v->seg[SEG_FS], &changed);
			put_changed_seg(&vmcb->gs, &v->seg[SEG_GS], &changed);
			if (changed) /* VMRUN does not load them: VMLOAD does */
				__asm__ volatile("vmload" : : "a"(vmcb_pa) : "memory");
		}
		set_events(v, vmcb);
		vmcb->clean = 0;
	}
}

/* Enable SVM on this CPU and make its VMCB. The host runs with GIF clear from here on:
 * interrupts, NMIs and SMIs wait for the guest (gif.S opens it briefly for NMIs). */
static void enable(struct vcpu *v)
{
	if (!v->hw[0]) { /* the first start; after S3 the same pages serve again */
		v->hw[0] = pgalloc(1);
		v->hw[1] = pgalloc(1);
		setup_vmcb((struct vmcb *)v->hw[0]);
	}
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
	__asm__ volatile("clgi");
	wrmsr(MSR_VM_HSAVE_PA, v->hw[1]);
}

const struct vmm_backend svm_backend = {
	.name = "AMD-V",
	.check = check,
	.stage2 = &pt_x86,
	.init = init,
	.io_intercept = svm_io_intercept,
	.msr_intercept = msr_intercept,
	.enable = enable,
	.run = run,
	.load = load,
	.flush_tlb = flush_tlb,
	.wait_nmi = svm_wait_nmi,
	.take_nmi = svm_take_nmi,
};
