/* One table from normalised exit reason to handler: where every exit goes, in one hop. */
#include "vmm/vcpu.h"
#include "vmm/debug.h"
#include "iommu/iommu.h"
#include "core/log.h"
#include "power/power.h"
#include "vmm/cpus.h"

static u64 rate_limit;

static void refuse_virt_insn(struct vcpu *v)
{
	/* #UD, as on a CPU without virtualization (the guest sees SVME clear, VMX absent). */
	vcpu_inject_ud(v);
}

static void handle_npf(struct vcpu *v)
{
	if (mmio_handle_npf(v))
		return; /* a trap page (vmm/mmio.c) */
	/* NPT maps all guest-physical memory (Parapet's own region to a decoy page), so this is
	 * an access beyond what the platform decodes. Report it and give the guest a #GP. */
	if (__atomic_fetch_add(&rate_limit, 1, __ATOMIC_RELAXED) < 16)
		LOG("vmm: cpu%u: nested page fault gpa=%lx %s%s rip=%lx\n", v->id, v->exit.npf.gpa,
		    v->exit.npf.access == NPF_WRITE   ? "write"
		    : v->exit.npf.access == NPF_FETCH ? "fetch"
						      : "read",
		    v->exit.npf.in_walk ? " (guest page walk)" : "", v->rip);
	vcpu_inject_gp(v);
}

static void handle_other(struct vcpu *v)
{
	if (__atomic_fetch_add(&rate_limit, 1, __ATOMIC_RELAXED) < 16)
		LOG("vmm: cpu%u: unexpected exit %lx at rip=%lx, ignored\n", v->id, v->exit.raw, v->rip);
}

/* The instruction the backend stepped has run (vmm/nmi.h): the guest's own #DB, if it had one. */
static void handle_step(struct vcpu *v)
{
	if (v->exit.step.dr6)
		vcpu_inject_db(v, v->exit.step.dr6);
}

typedef void (*exit_handler)(struct vcpu *);

static const exit_handler handlers[EXIT_NR] = {
	[EXIT_CPUID] = handle_cpuid,
	[EXIT_RDMSR] = handle_rdmsr,
	[EXIT_WRMSR] = handle_wrmsr,
	[EXIT_IO] = handle_io,
	[EXIT_VMMCALL] = handle_vmmcall,
	[EXIT_VIRT_INSN] = refuse_virt_insn,
	[EXIT_NPF] = handle_npf,
	[EXIT_SHUTDOWN] = power_guest_shutdown,
	[EXIT_OTHER] = handle_other,
	[EXIT_NMI] = handle_nmi,
	[EXIT_IRET] = handle_iret,
	[EXIT_STEP] = handle_step,
};

/* Whether the handler completed the guest's instruction (it moved RIP past it), or one
 * iteration of a REP string instruction, I/O or MMIO (it moved RSI or RDI; RIP stays until the last),
 * without raising an exception. */
static bool completed(const struct vcpu *v, u64 rip, u64 rsi, u64 rdi)
{
	bool str = (v->exit.reason == EXIT_IO && v->exit.io.string) || v->exit.reason == EXIT_NPF;
	return !v->inject.valid && (v->rip != rip || (str && (v->gpr[RSI] != rsi || v->gpr[RDI] != rdi)));
}

void vmm_dispatch(struct vcpu *v)
{
	cpus_park_if_frozen(v); /* nothing is handled while another CPU resets or sleeps */
	enum exit_reason r = v->exit.reason < EXIT_NR ? v->exit.reason : EXIT_OTHER;
	v->exits[r]++;
	u64 rip = v->rip, rsi = v->gpr[RSI], rdi = v->gpr[RDI];
	v->access = r == EXIT_IO ? (struct vm_access){ ACCESS_IO, v->exit.io.port, v->exit.io.size }
				 : (struct vm_access){ ACCESS_NONE, 0, 0 };
	handlers[r](v);
	if (completed(v, rip, rsi, rdi)) {
		if (v->rip != rip)
			v->rflags &= ~RFLAGS_RF; /* RF lasts until an instruction completes */
		debug_after_insn(v);             /* the single-step and breakpoint traps the hardware would raise */
	}
	iommu_poll(false);
}
