/* INIT and STARTUP IPIs, resolved and delivered by Parapet: see apic.h. */
#include "vmm/apic.h"
#include "vmm/cpus.h"
#include "vmm/mmio.h"
#include "mm/hvmem.h"
#include "core/lapic.h"
#include "core/log.h"
#include "core/panic.h"
#include "core/x86.h"

#define APIC_PAGES_MAX 4 /* moved-to pages Parapet traps besides the boot page */

static u64 boot_page;      /* where every APIC starts (IA32_APIC_BASE at reset) */
static unsigned phys_bits; /* the processor's physical address width */
static bool window_fixed;  /* the platform keeps the APIC registers put (apic_init) */
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
		return; /* INIT level de-assert: no effect since the Pentium 4 */
	for (unsigned i = 0; i < vmm_cpu_count(); i++) {
		struct vcpu *t = vcpu_get(i);
		if (!apic_ipi_addresses(from, t, lo, dest, x2))
			continue;
		bool posted = post(t, mode == ICR_MODE_INIT, (u8)ICR_VECTOR(lo));
		if (log_budget_take(&log_budget))
			LOG("apic: cpu%u: %s for cpu%u%s\n", from->id, mode == ICR_MODE_INIT ? "INIT" : "STARTUP",
			    t->id, posted ? "" : " (running: ignored)");
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

static bool xapic_mode(u64 apic_base)
{
	return (apic_base & APIC_BASE_EN) && !(apic_base & APIC_BASE_EXTD);
}

/* A trapped page that is not the writer's own xAPIC page: what the platform decodes there for
 * that CPU. Nothing in the interrupt range (reads all ones, writes dropped); elsewhere the
 * page's memory or device, accessed as the guest asked. */
static bool other_page(u64 gpa, unsigned size, bool write, u64 *val)
{
	if (gpa >= APIC_MSI_BASE && gpa < APIC_MSI_END)
		return false;
	return mmio_device_access(gpa, size, write, val);
}

/*
 * A guest access to a trapped APIC page (apic.h). On the writer's own xAPIC page a write is
 * performed on its APIC, except INIT and STARTUP, the APIC ID (Parapet addresses CPUs by the
 * IDs it started them with), a local vector table entry with delivery mode INIT, the reserved
 * registers at 000h-01Fh (QEMU takes a write to offset 0 as an MSI) and anything but an aligned
 * dword (undefined on the APIC): those are dropped. Reads come here only where the platform
 * keeps the APIC registers put (window_fixed): a moved page then reads the APIC.
 */
static bool apic_mmio(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	(void)ctx;
	u64 base = rdmsr(MSR_APIC_BASE); /* one read: this runs for every EOI */
	if (!xapic_mode(base) || (gpa & ~0xFFFull) != (base & APIC_BASE_ADDR_MASK))
		return other_page(gpa, size, write, val);
	u32 off = gpa & 0xFFF;
	u64 win = lapic_window_of(base);
	volatile u32 *reg = (volatile u32 *)(win + off);
	if (size != 4 || (off & 3))
		return false;
	if (!write) {
		*val = *reg;
		return true;
	}
	u32 x = (u32)*val;
	if (off < APIC_ID)
		return false;
	if (apic_lvt_init(off, x)) {
		if (log_budget_take(&log_budget))
			LOG("apic: cpu%u: LVT %x with delivery mode INIT refused\n", v->id, off);
		return false;
	}
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
			deliver(v, x, *(volatile u32 *)(win + APIC_ICR_HI) >> 24, false);
			return true;
		}
		break;
	}
	*reg = x;
	return true;
}

/*
 * Trap `page` for a moved APIC, and have the moving CPU flush its nested TLB before it runs
 * the guest again (a translation it still holds could let it write the page untrapped). Other
 * CPUs need no flush: the page is not their APIC, and a stale writable translation lets them
 * reach its memory or device directly, as the hardware does for them; one that moves its own
 * APIC there later flushes then.
 */
static bool follow(struct vcpu *v, u64 page)
{
	static struct spinlock lock;
	static u64 moved[APIC_PAGES_MAX];
	static unsigned n;
	if (!apic_base_usable(page, boot_page, &hvmem.guest_map, hvmem.base, hvmem.end))
		return false;
	bool ok = true;
	if (page != boot_page && (page < APIC_MSI_BASE || page >= APIC_MSI_END)) {
		spin_lock(&lock);
		unsigned i = 0;
		while (i < n && moved[i] != page)
			i++;
		ok = i < APIC_PAGES_MAX && mmio_trap_page(page, window_fixed ? PT_NONE : PT_RO, apic_mmio, NULL);
		if (ok && i == n)
			moved[n++] = page;
		spin_unlock(&lock);
	}
	if (ok)
		__atomic_store_n(&v->flush_stage2, true, __ATOMIC_SEQ_CST);
	return ok;
}

/* IA32_APIC_BASE: see apic.h. */
static bool set_base(struct vcpu *v, u64 val)
{
	u64 cur = rdmsr(MSR_APIC_BASE), old = cur & APIC_BASE_ADDR_MASK, page = val & APIC_BASE_ADDR_MASK;
	if (page >> phys_bits)
		return false;
	if (page != old && !follow(v, page)) {
		if (log_budget_take(&log_budget))
			LOG("apic: cpu%u: APIC base %lx cannot be trapped: the address bits are ignored\n", v->id,
			    page);
		page = old;
		val = (val & ~APIC_BASE_ADDR_MASK) | old;
	}
	val = (val & ~APIC_BASE_BSP) | (cur & APIC_BASE_BSP);
	if (!wrmsr_safe(MSR_APIC_BASE, val))
		return false;
	if (page != old && log_budget_take(&log_budget))
		LOG("apic: cpu%u: APIC base moved from %lx to %lx\n", v->id, old, page);
	if (!(val & APIC_BASE_EN)) {
		v->ldr = 0; /* disabling the APIC resets its registers */
		v->dfr = ~0u;
	}
	return true;
}

bool apic_wrmsr(struct vcpu *v, u32 msr, u64 val)
{
	if (msr == MSR_APIC_BASE)
		return set_base(v, val);
	if (!apic_enabled() || !lapic_x2apic())
		return false; /* no x2APIC: its MSRs #GP */
	if (apic_lvt_msr(msr)) {
		if (apic_lvt_init((msr - MSR_X2APIC_FIRST) * 16, (u32)val)) {
			if (log_budget_take(&log_budget))
				LOG("apic: cpu%u: LVT MSR %x with delivery mode INIT refused\n", v->id, msr);
			return true; /* dropped, as the xAPIC page drops it */
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
	__atomic_store_n(&v->mail.init, false, __ATOMIC_RELAXED); /* INIT while waiting: no change */
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

/*
 * Whether the platform moves the APIC registers with IA32_APIC_BASE, as the architecture does,
 * or keeps them at the reset base whatever the MSR says (QEMU maps its APIC window once): the
 * BSP's APIC is moved to PROBE_PAGE for one read of its version register, and back. Kept put,
 * Parapet moves them for the guest (apic.h): its own accesses and a moved CPU's writes go to
 * the window, and a moved page traps reads too. PROBE_PAGE lies outside the interrupt range,
 * in all of which QEMU's APIC answers reads.
 */
#define PROBE_PAGE APIC_MSI_END

static void find_window(void)
{
	u64 base = rdmsr(MSR_APIC_BASE);
	if (!xapic_mode(base) || boot_page == PROBE_PAGE || (PROBE_PAGE >> phys_bits))
		return;
	u32 version = lapic_read(APIC_VERSION);
	if (!wrmsr_safe(MSR_APIC_BASE, (base & ~APIC_BASE_ADDR_MASK) | PROBE_PAGE))
		return;
	window_fixed = *(volatile u32 *)phys_ptr(PROBE_PAGE + APIC_VERSION) != version;
	wrmsr(MSR_APIC_BASE, base);
	if (window_fixed) {
		lapic_fix_window(boot_page);
		LOG("apic: this platform keeps the APIC registers at %lx whatever their base; Parapet moves them for the guest\n",
		    boot_page);
	}
}

void apic_init(void)
{
	phys_bits = cpu_phys_bits();
	boot_page = rdmsr(MSR_APIC_BASE) & APIC_BASE_ADDR_MASK;
	/* The whole interrupt range: on QEMU a processor's write anywhere in it but the APIC's
	 * own registers is an MSI, which may carry INIT. */
	bool ok = mmio_trap_add(APIC_MSI_BASE, APIC_MSI_END - APIC_MSI_BASE, PT_RO, apic_mmio, NULL);
	if (ok && (boot_page < APIC_MSI_BASE || boot_page >= APIC_MSI_END))
		ok = mmio_trap_add(boot_page, 4096, PT_RO, apic_mmio, NULL);
	if (!ok)
		panic("apic: cannot trap the local APIC page at %lx", boot_page);
	find_window();
	LOG("apic: local APIC page %lx and the interrupt range trapped for writes; INIT and STARTUP are Parapet's\n",
	    boot_page);
}

void handle_nmi(struct vcpu *v)
{
	if (!apic_nmi_was_kick(v))
		nmi_raise(&v->nmi); /* the guest's own NMI: delivered when the guest can take it */
}
