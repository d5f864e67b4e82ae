/*
 * Intercepted MSRs. EFER is shadowed: the guest never sees SVME and cannot set it (the real
 * value always has it, or VMRUN would fail). The SVM MSRs fault as on a CPU without SVM, and
 * the SMM range registers cannot be moved. IA32_APIC_BASE and the x2APIC ICR go to vmm/apic.c. Other MSRs the backend traps only because they lie
 * outside its permission bitmap are performed as the guest asked.
 */
#include "vmm/vcpu.h"
#include "vmm/apic.h"
#include "vmm/backend.h"
#include "core/lapic.h"
#include "core/x86.h"

#define EFER_WRITABLE (EFER_SCE | EFER_LME | EFER_NXE | EFER_LMSLE | EFER_FFXSR | EFER_TCE)

static bool svm_msr(u32 msr)
{
	return msr == MSR_VM_CR || msr == MSR_IGNNE || msr == MSR_SMM_CTL || msr == MSR_VM_HSAVE_PA ||
	       msr == MSR_SVM_KEY;
}

static bool smm_msr(u32 msr)
{
	return msr == MSR_SMM_BASE || msr == MSR_SMM_ADDR || msr == MSR_SMM_MASK;
}

void msr_init(void)
{
	static const u32 rw[] = { MSR_EFER, MSR_SMM_BASE, MSR_SMM_ADDR, MSR_SMM_MASK };
	for (unsigned i = 0; i < ARRAY_SIZE(rw); i++)
		backend->msr_intercept(rw[i], true);
	backend->msr_intercept(MSR_APIC_BASE, false); /* vmm/apic.c */
	backend->msr_intercept(MSR_X2APIC_ICR, false);
	for (u32 msr = 0x82F; msr <= 0x837; msr++)
		if (apic_lvt_msr(msr))
			backend->msr_intercept(msr, false);
}

void handle_rdmsr(struct vcpu *v)
{
	u32 msr = (u32)v->gpr[RCX];
	u64 val;
	if (msr == MSR_EFER) {
		val = v->efer;
	} else if (svm_msr(msr) || !rdmsr_safe(msr, &val)) {
		vcpu_inject_gp(v);
		return;
	}
	v->gpr[RAX] = (u32)val;
	v->gpr[RDX] = val >> 32;
	vcpu_skip(v, 2);
}

static bool write_efer(struct vcpu *v, u64 val)
{
	if (val & ~(EFER_WRITABLE | EFER_LMA))
		return false; /* reserved bits, SVME among them */
	/* LME may not change while paging is on (AMD APM vol. 2 §14.6). */
	if ((v->cr0 & CR0_PG) && ((val ^ v->efer) & EFER_LME))
		return false;
	v->efer = (val & ~EFER_LMA) | (v->efer & EFER_LMA);
	return true;
}

void handle_wrmsr(struct vcpu *v)
{
	u32 msr = (u32)v->gpr[RCX];
	u64 val = (v->gpr[RDX] << 32) | (u32)v->gpr[RAX];
	bool ok;
	if (msr == MSR_EFER)
		ok = write_efer(v, val);
	else if (msr == MSR_APIC_BASE || msr == MSR_X2APIC_ICR || apic_lvt_msr(msr))
		ok = apic_wrmsr(v, msr, val);
	else if (svm_msr(msr) || smm_msr(msr))
		ok = false;
	else
		ok = wrmsr_safe(msr, val);
	if (!ok) {
		vcpu_inject_gp(v);
		return;
	}
	vcpu_skip(v, 2);
}
