/*
 * The virtual CPUs, one per physical CPU, and the start of the application processors: at
 * init Parapet sends each processor the MADT lists INIT and STARTUP itself, takes it into
 * long mode through boot/ap_trampoline.S, enables SVM on it, and holds it in Parapet's
 * wait-for-SIPI until the guest starts it (vmm/apic.c). Before the guest runs, so no
 * processor is ever left for the guest to start.
 */
#include "vmm/cpus.h"
#include "vmm/apic.h"
#include "vmm/svm/svm.h"
#include "io/acpi.h"
#include "mm/hvmem.h"
#include "core/cpu.h"
#include "core/lapic.h"
#include "core/log.h"
#include "core/pgalloc.h"
#include "core/string.h"
#include "core/x86.h"

#define TRAMP_PAGE 0x8000u              /* borrowed below 1 MiB while APs start; restored */

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

struct vcpu *vcpu_get(unsigned i) { return &vcpus[i]; }
unsigned vmm_cpu_count(void) { return nvcpus; }
const u64 *vmm_cpu_exits(unsigned cpu) { return vcpus[cpu].exits; }

extern const char ap_tramp[], ap_tramp_end[], ap_tramp_gdt[], ap_tramp_gdtr[], ap_tramp_jump[], ap_tramp_long[],
	ap_tramp_params[];

struct ap_params {
	u32 cr3, cr4;
	u64 stack, entry, arg;
} __packed;

static u8 saved_page[PAGE_SIZE];

static __noreturn void ap_main(struct vcpu *v)
{
	cpu_tables_init();
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
	__asm__ volatile("clgi");               /* as on every CPU: the host runs with GIF clear */
	u32 id = lapic_id();
	if (id != v->apic_id)
		LOG("cpus: cpu%u: MADT said APIC ID %x, the APIC says %x\n", v->id, v->apic_id, id);
	__atomic_store_n(&v->alive, true, __ATOMIC_RELEASE);
	svm_run_ap(v);
}

static bool alive(struct vcpu *v) { return __atomic_load_n(&v->alive, __ATOMIC_ACQUIRE); }

/* INIT, then STARTUP (twice if needed), as the MP specification times them; then wait up to
 * a second for the processor to reach ap_main. */
static bool start_ap(struct vcpu *v, u8 *page)
{
	struct ap_params *p = (struct ap_params *)(page + (ap_tramp_params - ap_tramp));
	p->stack = pgalloc(HV_STACK_SIZE / PAGE_SIZE) + HV_STACK_SIZE;
	p->entry = (u64)ap_main;
	p->arg = (u64)v;
	lapic_send(v->apic_id, ICR_MODE_INIT << 8 | ICR_ASSERT | ICR_LEVEL);
	io_delay_us(10000);
	for (unsigned i = 0; i < 2 && !alive(v); i++) {
		lapic_send(v->apic_id, ICR_MODE_STARTUP << 8 | TRAMP_PAGE >> 12);
		io_delay_us(200);
	}
	for (unsigned i = 0; i < 100000 && !alive(v); i++)
		io_delay_us(10);
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

	u8 *page = phys_ptr(TRAMP_PAGE);
	u64 len = (u64)(ap_tramp_end - ap_tramp);
	memcpy(saved_page, page, PAGE_SIZE);
	memcpy(page, ap_tramp, len);
	*(u32 *)(page + (ap_tramp_gdtr - ap_tramp) + 2) = TRAMP_PAGE + (u32)(ap_tramp_gdt - ap_tramp);
	*(u32 *)(page + (ap_tramp_jump - ap_tramp)) = TRAMP_PAGE + (u32)(ap_tramp_long - ap_tramp);
	struct ap_params *p = (struct ap_params *)(page + (ap_tramp_params - ap_tramp));
	p->cr3 = (u32)read_cr3();              /* the host tables lie below 4 GiB (mm/hvmem.c) */
	p->cr4 = (u32)read_cr4();

	unsigned started = 1;
	for (unsigned i = 0; i < n; i++) {
		if (ids[i] == bsp->apic_id)
			continue;
		struct vcpu *v = vcpu_new();
		if (!v) {
			/* Held in the processor's own wait-for-SIPI: every STARTUP is Parapet's. */
			lapic_send(ids[i], ICR_MODE_INIT << 8 | ICR_ASSERT | ICR_LEVEL);
			LOG("cpus: more than %u processors: APIC ID %x stays halted, unusable by the guest\n", MAX_CPUS, ids[i]);
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
	memcpy(page, saved_page, PAGE_SIZE);
	LOG("cpus: %u of %u processors run Parapet\n", started, n);
	return bsp;
}
