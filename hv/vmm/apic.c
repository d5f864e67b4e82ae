/* INIT and STARTUP IPIs, resolved and delivered by Parapet: see apic.h. */
#include "vmm/apic.h"
#include "vmm/cpus.h"
#include "vmm/mmio.h"
#include "core/lapic.h"
#include "core/log.h"
#include "core/panic.h"
#include "core/x86.h"

static u64 apic_page;                   /* the xAPIC page's address; the guest cannot move it */
static u32 log_budget = 64;

/* Post INIT, or STARTUP with `vector`, to t's mailbox. False for a STARTUP to a running
 * processor, which is ignored. */
static bool post(struct vcpu *t, bool init, u8 vector)
{
	bool posted = true;
	spin_lock(&t->mail.lock);
	if (init) {
		__atomic_store_n(&t->mail.sipi, false, __ATOMIC_RELAXED);
		__atomic_store_n(&t->mail.init, true, __ATOMIC_RELEASE);
	} else if (t->waiting || t->mail.init) {
		t->mail.vector = vector;
		__atomic_store_n(&t->mail.sipi, true, __ATOMIC_RELEASE);
	} else {
		posted = false;
	}
	spin_unlock(&t->mail.lock);
	return posted;
}

/* Interrupt t with Parapet's NMI. One in flight per target: Parapet's NMIs never merge. */
void apic_kick(struct vcpu *t)
{
	if (!__atomic_exchange_n(&t->kicked, true, __ATOMIC_ACQ_REL))
		lapic_send(t->apic_id, ICR_MODE_NMI << 8);
}

/* Post an INIT or STARTUP to every vCPU it addresses; interrupt each with an NMI. */
static void deliver(struct vcpu *from, u32 lo, u32 dest, bool x2)
{
	u32 mode = ICR_MODE(lo);
	if (mode == ICR_MODE_INIT && (lo & ICR_LEVEL) && !(lo & ICR_ASSERT))
		return;                 /* INIT level de-assert: no effect since the Pentium 4 */
	for (unsigned i = 0; i < vmm_cpu_count(); i++) {
		struct vcpu *t = vcpu_get(i);
		if (!apic_ipi_addresses(from, t, lo, dest, x2))
			continue;
		bool posted = post(t, mode == ICR_MODE_INIT, (u8)ICR_VECTOR(lo));
		if (log_budget_take(&log_budget))
			LOG("apic: cpu%u: %s for cpu%u%s\n", from->id, mode == ICR_MODE_INIT ? "INIT" : "STARTUP", t->id,
			    posted ? "" : " (running: ignored)");
		if (posted && t != from)
			apic_kick(t);
	}
}

unsigned apic_init_others(struct vcpu *self)
{
	unsigned n = vmm_cpu_count(), left = 0;
	for (unsigned i = 0; i < n; i++) {
		struct vcpu *t = vcpu_get(i);
		if (t != self && !__atomic_load_n(&t->waiting, __ATOMIC_ACQUIRE) && post(t, true, 0))
			apic_kick(t);
	}
	for (unsigned i = 0; i < n; i++) {
		struct vcpu *t = vcpu_get(i);
		unsigned ms = 0;
		while (t != self && !__atomic_load_n(&t->waiting, __ATOMIC_ACQUIRE) && ms++ < 1000)
			io_delay_us(1000);
		left += t != self && !__atomic_load_n(&t->waiting, __ATOMIC_ACQUIRE);
	}
	return left;
}

bool apic_nmi_was_kick(struct vcpu *v)
{
	return __atomic_exchange_n(&v->kicked, false, __ATOMIC_ACQ_REL);
}

static bool apic_enabled(void)
{
	return (rdmsr(MSR_APIC_BASE) & APIC_BASE_EN) != 0;
}

/* A guest write to the xAPIC page (reads are not trapped). Performed on this CPU's APIC,
 * except INIT and STARTUP, the APIC ID (Parapet addresses CPUs by the IDs it started them
 * with) and anything but an aligned dword (undefined on the APIC: dropped). */
static bool apic_mmio(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	(void)ctx;
	u32 off = gpa & 0xFFF;
	volatile u32 *reg = (volatile u32 *)(apic_page + off);
	if (!write || size != 4 || (off & 3))
		return false;           /* reads are not trapped */
	u32 x = (u32)*val;
	u64 base = rdmsr(MSR_APIC_BASE);        /* one read: this runs for every EOI */
	bool xapic = (base & APIC_BASE_EN) && !(base & APIC_BASE_EXTD);   /* else not the APIC's page */
	if (xapic && apic_lvt_init(off, x)) {
		if (log_budget_take(&log_budget))
			LOG("apic: cpu%u: LVT %x with delivery mode INIT refused\n", v->id, off);
		return false;
	}
	if (xapic) {
		switch (off) {
		case APIC_ID:
			return false;
		case APIC_LDR:
			v->ldr = x;
			break;
		case APIC_DFR:
			v->dfr = x;
			break;
		case APIC_ICR_LO:
			if (ICR_MODE(x) == ICR_MODE_INIT || ICR_MODE(x) == ICR_MODE_STARTUP) {
				deliver(v, x, *(volatile u32 *)(apic_page + APIC_ICR_HI) >> 24, false);
				return true;
			}
			break;
		}
	}
	*reg = x;
	return true;
}

bool apic_wrmsr(struct vcpu *v, u32 msr, u64 val)
{
	if (msr == MSR_APIC_BASE) {
		u64 cur = rdmsr(MSR_APIC_BASE);
		if ((val & APIC_BASE_ADDR_MASK) != apic_page)
			return false;           /* relocation would move the APIC past the trap */
		val = (val & ~APIC_BASE_BSP) | (cur & APIC_BASE_BSP);
		if (!wrmsr_safe(MSR_APIC_BASE, val))
			return false;
		if (!(val & APIC_BASE_EN)) {
			v->ldr = 0;             /* disabling the APIC resets its registers */
			v->dfr = ~0u;
		}
		return true;
	}
	if (!apic_enabled() || !lapic_x2apic())
		return false;           /* no x2APIC: its MSRs #GP */
	if (apic_lvt_msr(msr)) {
		if (apic_lvt_init((msr - MSR_X2APIC_FIRST) * 16, (u32)val)) {
			if (log_budget_take(&log_budget))
				LOG("apic: cpu%u: LVT MSR %x with delivery mode INIT refused\n", v->id, msr);
			return true;    /* dropped, as the xAPIC page drops it */
		}
		return wrmsr_safe(msr, val);
	}
	/* MSR_X2APIC_ICR */
	u32 lo = (u32)val;
	if (ICR_MODE(lo) == ICR_MODE_INIT || ICR_MODE(lo) == ICR_MODE_STARTUP) {
		deliver(v, lo, (u32)(val >> 32), true);
		return true;
	}
	return wrmsr_safe(MSR_X2APIC_ICR, val);
}

bool apic_take_init(struct vcpu *v)
{
	spin_lock(&v->mail.lock);
	bool init = v->mail.init;
	if (init) {
		__atomic_store_n(&v->mail.init, false, __ATOMIC_RELAXED);
		v->waiting = !v->bsp;
	}
	spin_unlock(&v->mail.lock);
	if (!init)
		return false;
	/* The APIC's INIT state, as far as software can set it: no logical ID, flat model,
	 * software-disabled (all LVT entries masked), TPR 0. */
	v->ldr = 0;
	v->dfr = ~0u;
	if (apic_enabled()) {
		if (!lapic_x2apic()) {
			lapic_write(APIC_LDR, 0);
			lapic_write(APIC_DFR, ~0u);
		}
		lapic_write(APIC_TPR, 0);
		lapic_write(APIC_SVR, 0xFF);
	}
	return true;
}

bool apic_take_sipi(struct vcpu *v, u8 *vector)
{
	spin_lock(&v->mail.lock);
	__atomic_store_n(&v->mail.init, false, __ATOMIC_RELAXED);   /* INIT while waiting: no change */
	bool sipi = v->mail.sipi;
	if (sipi) {
		*vector = v->mail.vector;
		__atomic_store_n(&v->mail.sipi, false, __ATOMIC_RELAXED);
		v->waiting = false;
	}
	spin_unlock(&v->mail.lock);
	return sipi;
}

void apic_vcpu_init(struct vcpu *v)
{
	v->apic_id = lapic_id();
	v->ldr = lapic_x2apic() ? 0 : lapic_read(APIC_LDR);
	v->dfr = lapic_x2apic() ? ~0u : lapic_read(APIC_DFR);
}

void apic_init(void)
{
	apic_page = rdmsr(MSR_APIC_BASE) & APIC_BASE_ADDR_MASK;
	if (!mmio_trap_add(apic_page, 4096, NPT_RO, apic_mmio, NULL))
		panic("apic: cannot trap the local APIC page at %lx", apic_page);
	LOG("apic: local APIC page %lx trapped for writes; INIT and STARTUP are Parapet's\n", apic_page);
}

void handle_nmi(struct vcpu *v)
{
	if (!apic_nmi_was_kick(v))
		nmi_raise(&v->nmi);     /* the guest's own NMI: delivered when the guest can take it */
}
