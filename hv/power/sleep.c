/* ACPI sleep under Parapet: S3 performed and resumed by Parapet, S4/S5 wiped first, anything
 * else refused. See power.h. */
#include "power/internal.h"
#include "guest/bios.h"
#include "iommu/iommu.h"
#include "io/pci.h"
#include "mm/hvmem.h"
#include "mm/memmap.h"
#include "vmm/cpus.h"
#include "vmm/io.h"
#include "vmm/backend.h"
#include "core/cpu.h"
#include "core/lapic.h"
#include "core/log.h"
#include "core/panic.h"
#include "core/pgalloc.h"
#include "core/string.h"
#include "core/x86.h"

#define ISA_DMA1_MASK_ALL 0x0F /* 8237 "write all mask bits" registers */
#define ISA_DMA2_MASK_ALL 0xDE

static u16 cmd_saved[PCI_DEVS_MAX]; /* PCI command registers while a sleep is under way */
static bool wak_pending;            /* a refused sleep: PM1 status shows WAK_STS */
static u32 log_budget = 32;
static u64 resume_stack;

/* What the guest asked to wake at, kept while Parapet's own vector is in the FACS. */
static struct {
	u64 facs[2]; /* the FACS structures the firmware may read */
	u32 vector[2];
	u64 x_vector[2];
	struct guest_start start;
} wake;

/*
 * While the machine sleeps, every page of low RAM the guest owns starts with a halt. STARTUP
 * can only start a processor at a page below 1 MiB, and the firmware may start the
 * application processors in the OS's memory on its resume path: SeaBIOS does, at 0x10000,
 * without waiting for them, and then puts the page's old bytes back, so a processor that takes
 * its STARTUP late runs the guest's code natively, with every byte of memory (keys included)
 * in reach (tests/power.test.ts plants such code). With the halt there it stops instead, until
 * Parapet's INIT takes it. The bytes go back once every processor is Parapet's again.
 */
#define LOW_PAGES (0x100000 / PAGE_SIZE)
static const u8 halt_stub[4] = { 0xFA, 0xF4, 0xEB, 0xFD }; /* cli; 1: hlt; jmp 1b */
static u32 low_saved[LOW_PAGES];
static bool low_stubbed[LOW_PAGES];

static void low_pages_halt(bool on)
{
	for (u64 p = 1; p < LOW_PAGES; p++) { /* page 0: the real-mode IVT, the firmware's */
		u64 pa = p * PAGE_SIZE;
		if (on) {
			low_stubbed[p] = pa != CPUS_TRAMP_PAGE && memmap_is_ram(&hvmem.guest_map, pa, PAGE_SIZE);
			if (low_stubbed[p]) {
				memcpy(&low_saved[p], phys_ptr(pa), sizeof(halt_stub));
				memcpy(phys_ptr(pa), halt_stub, sizeof(halt_stub));
			}
		} else if (low_stubbed[p]) {
			memcpy(phys_ptr(pa), &low_saved[p], sizeof(halt_stub));
			low_stubbed[p] = false;
		}
	}
}

static u32 rd32(u64 pa)
{
	u32 v;
	memcpy(&v, phys_ptr(pa), 4);
	return v;
}
static u64 rd64(u64 pa)
{
	u64 v;
	memcpy(&v, phys_ptr(pa), 8);
	return v;
}
static void wr32(u64 pa, u32 v)
{
	memcpy(phys_ptr(pa), &v, 4);
}
static void wr64(u64 pa, u64 v)
{
	memcpy(phys_ptr(pa), &v, 8);
}

u32 power_pm1_status_io(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	(void)ctx;
	u32 shift = 8 * (u32)(port - pm.pm1a_evt);
	if (in) {
		u32 r = io_port_hw(port, size, true, 0);
		if (__atomic_load_n(&wak_pending, __ATOMIC_ACQUIRE))
			r |= (PM1_STS_WAK >> shift) & (size == 1 ? 0xFF : 0xFFFF);
		return r;
	}
	if ((val << shift) & PM1_STS_WAK)
		__atomic_store_n(&wak_pending, false, __ATOMIC_RELEASE); /* write 1 to clear */
	return io_port_hw(port, size, false, val);
}

static void refuse(struct vcpu *v, unsigned state, const char *why)
{
	power_stats.refused++;
	__atomic_store_n(&wak_pending, true, __ATOMIC_RELEASE);
	if (log_budget_take(&log_budget))
		LOG("power: cpu%u: sleep (S%u) refused: %s\n", v->id, state, why);
}

/* The ACPI state whose SLP_TYP the write carries, by the DSDT's \_Sn packages; 6 if none. */
static unsigned state_of(u16 port, u32 val)
{
	bool b = pm.pm1b_cnt && port >= pm.pm1b_cnt && port < pm.pm1b_cnt + 2;
	u16 base = b ? pm.pm1b_cnt : pm.pm1a_cnt;
	u32 typ = ((val << 8 * (port - base)) & PM1_CNT_SLP_TYP_MASK) >> PM1_CNT_SLP_TYP_SHIFT;
	for (unsigned n = 0; n < 6; n++)
		if (pm.sx_present[n] && (b ? pm.slp_typb[n] : pm.slp_typa[n]) == typ)
			return n;
	return 6;
}

/* The firmware finds the FACS through the RSDP, the root tables and the FADT: they must still
 * say what they said at init (and the FACS be there), or the wake-up could go elsewhere. */
static const char *tables_changed(void)
{
	if (acpi_find_rsdp(hvmem_outside) != pm_rsdp)
		return "the RSDP moved";
	for (int x = 0; x < 2; x++) { /* SeaBIOS follows the RSDT, UEFI firmware the XSDT; neither checks sums */
		bool valid;
		u64 f = acpi_first_entry(hvmem_outside, pm_rsdp, x, "FACP", &valid);
		if (!valid || (f != pm.fadt && (f || !x)))
			return x ? "the XSDT no longer leads to the FADT of boot time"
				 : "the RSDT no longer leads to the FADT of boot time";
	}
	u32 len;
	const u8 *f = acpi_table(hvmem_outside, pm.fadt, &len);
	u32 fc = 0;
	u64 xfc = 0;
	if (f && len >= 40)
		memcpy(&fc, f + 36, 4);
	if (f && len >= 140)
		memcpy(&xfc, f + 132, 8);
	if (!f || fc != pm.facs32 || xfc != pm.facs64)
		return "the FADT's FACS address changed since boot";
	for (unsigned i = 0; i < 2; i++) {
		u64 a = i ? pm.facs64 : pm.facs32;
		if (a && (!hvmem_outside(a, FACS_LEN_MIN) || memcmp(phys_ptr(a), "FACS", 4)))
			return "the FACS is gone";
	}
	return NULL;
}

static __noreturn void resume(u64 unused);

/* S3/S2: Parapet's vector in the FACS, the sleep, and (if the platform did not sleep) undo. */
static void s3(struct vcpu *v, unsigned state, u16 port, unsigned size, u32 val)
{
	if (!pm.facs)
		return refuse(v, state, "the FADT names no FACS");
	const char *why = tables_changed();
	if (why)
		return refuse(v, state, why);
	wake.facs[0] = pm.facs32;
	wake.facs[1] = pm.facs64 != pm.facs32 ? pm.facs64 : 0;
	u64 f = pm.facs; /* the one the OS uses: X_FIRMWARE_CTRL first */
	u32 vec = rd32(f + FACS_WAKING_VECTOR);
	bool has_x = *(u8 *)phys_ptr(f + FACS_VERSION) >= 1 && rd32(f + 4) >= 40;
	u64 xvec = has_x ? rd64(f + FACS_X_WAKING_VECTOR) : 0;
	if (xvec && (rd32(f + FACS_OSPM_FLAGS) & FACS_OSPM_64BIT_WAKE))
		return refuse(v, state, "a 64-bit waking vector (Parapet wakes the guest in real or 32-bit mode)");
	if (xvec > 0xFFFFFFF0ull)
		return refuse(v, state, "X_Firmware_Waking_Vector above 4 GiB");
	if (!vec && !xvec)
		return refuse(v, state, "no waking vector in the FACS");
	if (xvec)
		wake.start = (struct guest_start){ .flat32 = true, .eip = (u32)xvec };
	else if (vec >= 0x100000)
		return refuse(v, state, "a real-mode waking vector above 1 MiB");
	else
		wake.start = (struct guest_start){ .cs = (u16)(vec >> 4), .ip = (u16)(vec & 0xF) };

	/* No DMA may change the FACS or the trampoline page from here on: bus mastering off on
	 * every PCI function (the sleep resets them; the guest's drivers restore their
	 * configuration on resume), every 8237 channel masked, and a moment for DMA under way. */
	unsigned ncmd = pci_dma_stop(cmd_saved, PCI_DEVS_MAX);
	outb(ISA_DMA1_MASK_ALL, 0x0F);
	outb(ISA_DMA2_MASK_ALL, 0x0F);
	io_delay_us(1000);
	low_pages_halt(true);
	cpus_tramp_install(resume_stack, resume, 0);
	for (unsigned i = 0; i < 2; i++) {
		u64 a = wake.facs[i];
		if (!a)
			continue;
		wake.vector[i] = rd32(a + FACS_WAKING_VECTOR);
		wake.x_vector[i] = rd32(a + 4) >= 40 && *(u8 *)phys_ptr(a + FACS_VERSION) >= 1
				       ? rd64(a + FACS_X_WAKING_VECTOR)
				       : 0;
		wr32(a + FACS_WAKING_VECTOR, CPUS_TRAMP_PAGE); /* real mode at 0800:0000 */
		if (wake.x_vector[i])
			wr64(a + FACS_X_WAKING_VECTOR, 0);
	}
	LOG("power: cpu%u: S%u: guest waking vector %s %x; the firmware wakes Parapet at %x\n", v->id, state,
	    xvec ? "32-bit" : "real mode", xvec ? (u32)xvec : vec, CPUS_TRAMP_PAGE);
	__asm__ volatile("wbinvd" ::: "memory");
	io_port_hw(port, size, false, val);
	if (pm.pm1b_cnt && port < pm.pm1b_cnt) { /* both blocks: write SLP_EN to each */
		u32 b = io_port_hw(pm.pm1b_cnt, 2, true, 0) & ~(PM1_CNT_SLP_TYP_MASK | PM1_CNT_SLP_EN);
		io_port_hw(pm.pm1b_cnt, 2, false,
		    b | (u32)pm.slp_typb[state] << PM1_CNT_SLP_TYP_SHIFT | PM1_CNT_SLP_EN);
	}
	io_delay_us(1000000);
	/* Still here: the platform did not sleep. Put everything back. */
	for (unsigned i = 0; i < 2; i++)
		if (wake.facs[i]) {
			wr32(wake.facs[i] + FACS_WAKING_VECTOR, wake.vector[i]);
			if (wake.x_vector[i])
				wr64(wake.facs[i] + FACS_X_WAKING_VECTOR, wake.x_vector[i]);
		}
	cpus_tramp_remove();
	low_pages_halt(false);
	pci_dma_restore(cmd_saved, ncmd);
	refuse(v, state, "the platform did not sleep within a second");
}

void power_sleep(struct vcpu *v, u16 port, unsigned size, u32 val)
{
	unsigned n = state_of(port, val);
	switch (n) {
	case 4:
	case 5:
		power_terminal(v, n == 4 ? "ACPI S4 (hibernation)" : "ACPI S5 (power off)", port, size, val);
	case 1:
		io_port_hw(port, size, false, val); /* the processor context survives S1 */
		return;
	case 2:
	case 3:
		if (!cpus_freeze_others(v)) {
			refuse(v, n, "another processor did not stop");
		} else {
			s3(v, n, port, size, val);
		}
		cpus_thaw();
		return;
	default:
		refuse(v, n, n == 0 ? "SLP_TYP of S0" : "an SLP_TYP the DSDT gives no sleep state");
	}
}

/*
 * The firmware's wake-up, on the boot processor, through boot/ap_trampoline.S: long mode on
 * the host's page tables and this stack. Everything the sleep reset comes back, then the guest
 * starts at its waking vector.
 */
static __noreturn void resume(u64 unused)
{
	(void)unused;
	cpu_tables_init();
	log_sink_resume();
	struct vcpu *v = cpus_self();
	if (!v)
		panic("power: resumed on a processor Parapet does not know (APIC ID %x)", lapic_id());
	cpus_reset_freeze();
	cpus_tramp_remove();
	/* First the other processors, so none runs anything but Parapet for longer than needed. */
	unsigned failed, aps = cpus_restart_aps(v, &failed);
	if (failed) /* a processor Parapet does not hold could be started by anyone: fail closed */
		power_terminal(v, "a processor did not come back after S3", 0, 0, 0);
	low_pages_halt(false);
	for (unsigned i = 0; i < 2; i++)
		if (wake.facs[i]) {
			wr32(wake.facs[i] + FACS_WAKING_VECTOR, wake.vector[i]);
			if (wake.x_vector[i])
				wr64(wake.facs[i] + FACS_X_WAKING_VECTOR, wake.x_vector[i]);
		}
	if (!iommu_resume()) {
		power_wipe(v, "the IOMMU did not come back after S3");
		panic("power: the IOMMU did not come back after S3: keys wiped");
	}
	power_pmbase_resume();
	power_stats.resumes++;
	LOG("power: S3 resume %lu on cpu%u: long mode, SVM, IOMMU%s and %u other processor(s) back; "
	    "entering the guest's waking vector\n",
	    power_stats.resumes, v->id, iommu_active() ? "" : " (none)", aps);
	backend->enable(v);
	v->restart = &wake.start;
	backend->run(v);
}

void power_sleep_init(void)
{
	resume_stack = pgalloc(HV_STACK_SIZE / PAGE_SIZE) + HV_STACK_SIZE;
}
