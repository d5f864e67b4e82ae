/*
 * The virtual CPUs, one per physical CPU, and the start of the application processors: at
 * init Parapet sends each processor the MADT lists INIT and STARTUP itself, takes it into
 * long mode through boot/ap_trampoline.S, enables the backend on it, and holds it in Parapet's
 * wait-for-SIPI until the guest starts it (vmm/apic.c). Before the guest runs, so no
 * processor is ever left for the guest to start.
 */
#include "vmm/cpus.h"
#include "vmm/apic.h"
#include "vmm/backend.h"
#include "io/acpi.h"
#include "mm/hvmem.h"
#include "core/cpu.h"
#include "core/lapic.h"
#include "core/log.h"
#include "core/pgalloc.h"
#include "core/string.h"
#include "core/x86.h"

#define TRAMP_PAGE 0x8000u /* borrowed below 1 MiB while APs start; restored */

static struct vcpu vcpus[MAX_CPUS];
static unsigned nvcpus;

struct vcpu *vcpu_new(void)
{
	if (nvcpus >= MAX_CPUS)
		return NULL;
	struct vcpu *v = &vcpus[nvcpus];
	v->id = nvcpus++;
	v->dfr = ~0u;
	return v;
}

struct vcpu *vcpu_get(unsigned i)
{
	return &vcpus[i];
}
unsigned vmm_cpu_count(void)
{
	return nvcpus;
}
const u64 *vmm_cpu_exits(unsigned cpu)
{
	return vcpus[cpu].exits;
}

extern const char ap_tramp[], ap_tramp_end[], ap_tramp_gdt[], ap_tramp_gdtr[], ap_tramp_jump[], ap_tramp_long[],
    ap_tramp_params[], ap_tramp_ran[];

struct ap_params {
	u32 cr3, cr4;
	u64 stack, entry, arg;
} __packed;

static u8 saved_page[PAGE_SIZE];

static __noreturn void ap_main(struct vcpu *v)
{
	cpu_tables_init();
	u32 id = lapic_id();
	if (id != v->apic_id)
		LOG("cpus: cpu%u: MADT said APIC ID %x, the APIC says %x\n", v->id, v->apic_id, id);
	__atomic_store_n(&v->alive, true, __ATOMIC_RELEASE);
	backend->enable(v);
	backend->run(v); /* v->waiting: it waits for the guest's STARTUP first */
}

static bool alive(struct vcpu *v)
{
	return __atomic_load_n(&v->alive, __ATOMIC_ACQUIRE);
}

/*
 * INIT and at once STARTUP; STARTUP again every ~10 ms until the processor reaches ap_main,
 * and INIT again every ~100 ms while the trampoline has not run; for up to ~10 s, as Linux
 * waits. The STARTUP goes right after the INIT, not 10 ms later: a STARTUP the firmware sent
 * before may still be pending (SeaBIOS's S3 path broadcasts INIT and STARTUP to its own page
 * and does not wait; in QEMU a pending STARTUP survives an INIT), and a processor taking it
 * would run whatever the guest left at that page, natively. Ours, sent at once, replaces its
 * vector; if the processor took the old one all the same, the next INIT stops it, whatever it
 * runs (our trampoline keeps nothing until ap_main, so stopping it half-way is harmless).
 * A STARTUP that arrives while the INIT is still in progress is dropped, hence the repeats; a
 * STARTUP to a running processor is ignored. io_delay_us is port 0x80 writes: under
 * emulation far shorter than their nominal microsecond.
 */
static bool start_ap(struct vcpu *v, u8 *page)
{
	struct ap_params *p = (struct ap_params *)(page + (ap_tramp_params - ap_tramp));
	volatile u32 *ran = (volatile u32 *)(page + (ap_tramp_ran - ap_tramp));
	if (!v->stack)
		v->stack = pgalloc(HV_STACK_SIZE / PAGE_SIZE) + HV_STACK_SIZE;
	p->stack = v->stack; /* a restart (after S3) reuses it: nothing on it survives */
	p->entry = (u64)ap_main;
	p->arg = (u64)v;
	*ran = 0;
	for (unsigned i = 0; i < 1000 && !alive(v); i++) {
		if (i % 10 == 0 && !*ran)
			lapic_send(v->apic_id, ICR_MODE_INIT << 8 | ICR_ASSERT | ICR_LEVEL);
		lapic_send(v->apic_id, ICR_MODE_STARTUP << 8 | TRAMP_PAGE >> 12);
		for (unsigned j = 0; j < 1000 && !alive(v); j++)
			io_delay_us(10);
	}
	return alive(v);
}

struct vcpu *cpus_start(void)
{
	struct vcpu *bsp = vcpu_new();
	bsp->bsp = true;
	apic_vcpu_init(bsp);

	u32 ids[MAX_CPUS * 4];
	u64 rsdp = acpi_find_rsdp(hvmem_outside);
	u64 madt = rsdp ? acpi_find_table(hvmem_outside, rsdp, "APIC") : 0;
	unsigned n = madt ? acpi_madt_cpus(hvmem_outside, madt, ids, ARRAY_SIZE(ids)) : 0;
	if (n == 0) {
		LOG("cpus: no MADT: Parapet runs on the boot processor only\n");
		return bsp;
	}

	u8 *page = cpus_tramp_install(0, 0, 0);
	unsigned started = 1;
	for (unsigned i = 0; i < n; i++) {
		if (ids[i] == bsp->apic_id)
			continue;
		struct vcpu *v = vcpu_new();
		if (!v) {
			/* Held in the processor's own wait-for-SIPI: every STARTUP is Parapet's. */
			lapic_send(ids[i], ICR_MODE_INIT << 8 | ICR_ASSERT | ICR_LEVEL);
			LOG("cpus: more than %u processors: APIC ID %x stays halted, unusable by the guest\n", MAX_CPUS,
			    ids[i]);
			continue;
		}
		v->apic_id = ids[i];
		v->waiting = true;
		if (start_ap(v, page)) {
			started++;
		} else {
			lapic_send(ids[i], ICR_MODE_INIT << 8 | ICR_ASSERT | ICR_LEVEL);
			LOG("cpus: cpu%u (APIC ID %x) did not start; the guest cannot use it\n", v->id, ids[i]);
		}
	}
	cpus_tramp_remove();
	LOG("cpus: %u of %u processors run Parapet\n", started, n);
	return bsp;
}

void *cpus_tramp_install(u64 stack, void (*entry)(u64), u64 arg)
{
	u8 *page = phys_ptr(TRAMP_PAGE);
	memcpy(saved_page, page, PAGE_SIZE);
	memcpy(page, ap_tramp, (u64)(ap_tramp_end - ap_tramp));
	*(u32 *)(page + (ap_tramp_gdtr - ap_tramp) + 2) = TRAMP_PAGE + (u32)(ap_tramp_gdt - ap_tramp);
	*(u32 *)(page + (ap_tramp_jump - ap_tramp)) = TRAMP_PAGE + (u32)(ap_tramp_long - ap_tramp);
	struct ap_params *p = (struct ap_params *)(page + (ap_tramp_params - ap_tramp));
	p->cr3 = (u32)read_cr3(); /* the host tables lie below 4 GiB (mm/hvmem.c) */
	p->cr4 = (u32)read_cr4();
	p->stack = stack;
	p->entry = (u64)entry;
	p->arg = arg;
	return page;
}

void cpus_tramp_remove(void)
{
	memcpy(phys_ptr(TRAMP_PAGE), saved_page, PAGE_SIZE);
}

unsigned cpus_restart_aps(struct vcpu *self, unsigned *failed)
{
	*failed = 0;
	u8 *page = cpus_tramp_install(0, 0, 0);
	unsigned started = 0;
	for (unsigned i = 0; i < nvcpus; i++) {
		struct vcpu *v = &vcpus[i];
		if (v == self || !v->stack)
			continue; /* this CPU, or an AP that never started: held in INIT */
		__atomic_store_n(&v->alive, false, __ATOMIC_RELAXED);
		__atomic_store_n(&v->kicked, false, __ATOMIC_RELAXED);
		v->mail = (struct vcpu_mail){ 0 };
		v->waiting = true;
		v->restart = NULL;
		if (start_ap(v, page)) {
			started++;
		} else {
			LOG("cpus: cpu%u (APIC ID %x) did not come back (its trampoline %s)\n", v->id, v->apic_id,
			    *(volatile u32 *)(page + (ap_tramp_ran - ap_tramp)) ? "ran" : "never ran");
			lapic_send(v->apic_id, ICR_MODE_INIT << 8 | ICR_ASSERT | ICR_LEVEL);
			(*failed)++;
		}
	}
	cpus_tramp_remove();
	return started;
}

/*
 * Stopping the world. One CPU at a time owns it (freeze_owner); every other CPU, kicked out of
 * the guest by Parapet's NMI, parks in cpus_park_if_frozen() at its next exit (or in its
 * wait-for-SIPI) until the owner thaws it, which a reset, power-off or sleep never does.
 */
#define NO_OWNER (~0u)
static u32 freeze_owner = NO_OWNER;
static u32 parked;

bool cpus_freeze_others(struct vcpu *self)
{
	u32 none = NO_OWNER;
	while (
	    !__atomic_compare_exchange_n(&freeze_owner, &none, self->id, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		none = NO_OWNER;
		cpus_park_if_frozen(self); /* another CPU's reset or sleep goes first */
	}
	unsigned others = 0;
	for (unsigned i = 0; i < nvcpus; i++) {
		struct vcpu *t = &vcpus[i];
		if (t == self || (!t->bsp && !__atomic_load_n(&t->alive, __ATOMIC_ACQUIRE)))
			continue; /* an AP that never started runs nothing */
		others++;
		apic_kick(t);
	}
	for (unsigned ms = 0; __atomic_load_n(&parked, __ATOMIC_ACQUIRE) < others && ms < 1000; ms++)
		io_delay_us(1000);
	if (__atomic_load_n(&parked, __ATOMIC_ACQUIRE) < others)
		LOG("cpus: cpu%u: %u of %u other processors did not stop within a second\n", self->id,
		    others - __atomic_load_n(&parked, __ATOMIC_ACQUIRE), others);
	return __atomic_load_n(&parked, __ATOMIC_ACQUIRE) >= others;
}

void cpus_park_if_frozen(struct vcpu *v)
{
	u32 owner = __atomic_load_n(&freeze_owner, __ATOMIC_ACQUIRE);
	if (owner == NO_OWNER || owner == v->id)
		return;
	__atomic_fetch_add(&parked, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&freeze_owner, __ATOMIC_ACQUIRE) != NO_OWNER)
		cpu_relax();
	__atomic_fetch_sub(&parked, 1, __ATOMIC_ACQ_REL);
}

void cpus_thaw(void)
{
	__atomic_store_n(&freeze_owner, NO_OWNER, __ATOMIC_RELEASE);
}

void cpus_reset_freeze(void)
{
	__atomic_store_n(&parked, 0, __ATOMIC_RELAXED);
	cpus_thaw();
}

void cpus_flush_stage2(void)
{
	u32 seen[MAX_CPUS];
	unsigned n = nvcpus;
	for (unsigned i = 0; i < n; i++) {
		struct vcpu *t = &vcpus[i];
		__atomic_store_n(&t->flush_stage2, true, __ATOMIC_SEQ_CST);
		seen[i] = __atomic_load_n(&t->guest_seq, __ATOMIC_SEQ_CST);
		if (seen[i] & 1)
			apic_kick(t); /* in the guest: the NMI makes it leave */
	}
	for (unsigned i = 0; i < n; i++)
		while ((seen[i] & 1) && __atomic_load_n(&vcpus[i].guest_seq, __ATOMIC_ACQUIRE) == seen[i])
			cpu_relax();
}

struct vcpu *cpus_self(void)
{
	u32 id = lapic_id();
	for (unsigned i = 0; i < nvcpus; i++)
		if (vcpus[i].apic_id == id)
			return &vcpus[i];
	return NULL;
}
