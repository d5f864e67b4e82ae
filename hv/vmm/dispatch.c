/* One table from normalised exit reason to handler: where every exit goes, in one hop. */
#include "vmm/vcpu.h"
#include "iommu/iommu.h"
#include "core/log.h"
#include "power/power.h"
#include "vmm/cpus.h"

static u64 rate_limit;

static void refuse_svm_insn(struct vcpu *v)
{
	/* SVM instructions #UD, as on a CPU without SVM (and SVME clear in the guest's EFER). */
	vcpu_inject_ud(v);
}

static void handle_npf(struct vcpu *v)
{
	if (mmio_handle_npf(v))
		return;                 /* a trap page (vmm/mmio.c) */
	/* NPT maps all guest-physical memory (Parapet's own region to a decoy page), so this is
	 * an access beyond what the platform decodes. Report it and give the guest a #GP. */
	if (__atomic_fetch_add(&rate_limit, 1, __ATOMIC_RELAXED) < 16)
		LOG("vmm: cpu%u: nested page fault gpa=%lx error=%lx rip=%lx\n", v->id, v->exit.npf.gpa,
		    v->exit.npf.error, v->rip);
	vcpu_inject_gp(v);
}

static void handle_other(struct vcpu *v)
{
	if (__atomic_fetch_add(&rate_limit, 1, __ATOMIC_RELAXED) < 16)
		LOG("vmm: cpu%u: unexpected exit %lx at rip=%lx, ignored\n", v->id, v->exit.raw, v->rip);
}

typedef void (*exit_handler)(struct vcpu *);

static const exit_handler handlers[EXIT_NR] = {
	[EXIT_CPUID] = handle_cpuid,
	[EXIT_RDMSR] = handle_rdmsr,
	[EXIT_WRMSR] = handle_wrmsr,
	[EXIT_IO] = handle_io,
	[EXIT_VMMCALL] = handle_vmmcall,
	[EXIT_SVM_INSN] = refuse_svm_insn,
	[EXIT_NPF] = handle_npf,
	[EXIT_SHUTDOWN] = power_guest_shutdown,
	[EXIT_OTHER] = handle_other,
	[EXIT_NMI] = handle_nmi,
};

void vmm_dispatch(struct vcpu *v)
{
	cpus_park_if_frozen(v);         /* nothing is handled while another CPU resets or sleeps */
	enum exit_reason r = v->exit.reason < EXIT_NR ? v->exit.reason : EXIT_OTHER;
	v->exits[r]++;
	handlers[r](v);
	iommu_poll(false);
}
