/*
 * What happens to a vCPU outside the guest, in neutral code: starts, INIT, STARTUP and
 * Parapet's wait-for-SIPI (vmm/apic.c posts them), and the choice of the backend.
 */
#include "vmm/backend.h"
#include "vmm/apic.h"
#include "vmm/cpus.h"
#include "vmm/svm/svm.h"
#include "guest/linux.h"
#include "core/cpu.h"
#include "core/log.h"
#include "core/panic.h"
#include "core/string.h"
#include "core/x86.h"

const struct vmm_backend *backend;
static u32 ipi_log_budget = 256; /* the guest decides how many INIT/STARTUP it sends */

void backend_select(void)
{
	const struct vmm_backend *const all[] = { &svm_backend };
	for (unsigned i = 0; i < ARRAY_SIZE(all); i++) {
		const char *why = all[i]->check();
		if (!why) {
			backend = all[i];
			LOG("vmm: backend %s\n", backend->name);
			return;
		}
		LOG("vmm: %s: %s\n", all[i]->name, why);
	}
	panic("vmm: this CPU has no usable hardware virtualization");
}

static u32 signature(void)
{
	u32 a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	return a;
}

void vcpu_load(struct vcpu *v, const struct vstate *s)
{
	memset(v->gpr, 0, sizeof(v->gpr));
	v->gpr[RDX] = s->rdx;
	v->gpr[RSI] = s->rsi;
	v->efer = s->efer;
	v->inject.valid = false;
	v->nmi = (struct vnmi){ 0 }; /* INIT: no NMI in service, none latched */
	/* Not switched at entry: the guest's while Parapet runs on this CPU. */
	__asm__ volatile("mov %0, %%dr0; mov %0, %%dr1; mov %0, %%dr2; mov %0, %%dr3" : : "r"(0ull));
	if (read_cr4() & CR4_OSXSAVE)
		xsetbv(0, 1); /* XCR0: x87 only */
	backend->load(v, s);
	backend->flush_tlb(v); /* INIT flushes the TLBs */
}

static void start(struct vcpu *v, const struct guest_start *g)
{
	struct vstate s;
	vstate_start(&s, signature(), g);
	vcpu_load(v, &s);
	LOG("vcpu: cpu%u: entering the guest at %x:%x (%s)\n", v->id, (unsigned)s.seg[SEG_CS].sel, (unsigned)s.rip,
	    g->linux32  ? "Linux 32-bit entry"
	    : g->flat32 ? "32-bit protected mode"
			: "real mode");
}

/* Parapet's wait-for-SIPI: the processor sleeps in the host until an NMI brings a STARTUP. */
static void wait_for_sipi(struct vcpu *v)
{
	u8 vec;
	while (!apic_take_sipi(v, &vec)) {
		if (backend->wait_nmi())
			apic_nmi_was_kick(v); /* nothing runs here for a guest NMI to reach */
		cpus_park_if_frozen(v);
	}
	struct vstate s;
	vstate_startup(&s, signature(), vec);
	vcpu_load(v, &s);
	if (log_budget_take(&ipi_log_budget))
		LOG("vcpu: cpu%u: STARTUP: entering the guest at %x:0000 (real mode)\n", v->id, vec << 8);
}

void vcpu_check_events(struct vcpu *v)
{
	if (v->restart) {
		start(v, v->restart);
		v->restart = NULL;
	}
	cpus_park_if_frozen(v); /* another CPU resets, powers off or sleeps */
	if (apic_mail_posted(v) && apic_take_init(v)) {
		if (log_budget_take(&ipi_log_budget))
			LOG("vcpu: cpu%u: INIT%s\n", v->id,
			    v->bsp ? ": restarting at the reset vector" : "; waiting for STARTUP");
		if (v->bsp) {
			struct vstate s;
			vstate_reset_vector(&s, signature());
			vcpu_load(v, &s);
		}
		/* else v->waiting: loaded below when its STARTUP comes */
	}
	if (v->waiting)
		wait_for_sipi(v);
}
