/* The preboot phase and its one handoff: see preboot.h. */
#include "handoff/preboot.h"
#include "handoff/module.h"
#include "handoff/policy.h"
#include "drivers/ahci/ahci_port.h"
#include "guest/linux.h"
#include "io/ecam.h"
#include "io/legacy.h"
#include "io/pci.h"
#include "mm/hvmem.h"
#include "vmm/apic.h"
#include "vmm/gmem.h"
#include "vmm/ioapic.h"
#include "vmm/vcpu.h"
#include "vmm/vmmcall.h"
#include "core/lapic.h"
#include "core/log.h"
#include "core/panic.h"
#include "core/pgalloc.h"
#include "core/string.h"

enum phase { PHASE_NONE, PHASE_PREBOOT, PHASE_TARGET };

static enum phase phase; /* changed only by the BSP, in preboot_handoff() */
static struct guest_start target_start;
static u8 *low_saved; /* conventional memory as it was before the preboot guest */
static struct lapic_state lapic_fw;
static struct legacy_state legacy_fw;
static u8 record[POLICY_MAX_SIZE]; /* the record, copied out of the guest once */
static u32 log_budget = 16;

bool preboot_find(const struct boot_info *bi, unsigned *kernel)
{
	for (unsigned i = 0; i < bi->nmods; i++)
		if (linux_is_bzimage(phys_ptr(bi->mods[i].start), bi->mods[i].end - bi->mods[i].start)) {
			*kernel = i;
			return true;
		}
	return false;
}

void preboot_prepare(const struct boot_info *bi, unsigned kernel, const struct guest_start *bios,
    struct guest_start *start)
{
	const struct boot_module *k = &bi->mods[kernel];
	if (kernel + 1 >= bi->nmods)
		panic("preboot: the kernel (module %u) has no initrd module after it", kernel);
	const struct boot_module *rd = &bi->mods[kernel + 1];
	const u8 *img = phys_ptr(k->start);
	struct linux_image li;
	const char *err = linux_parse(img, k->end - k->start, &li);
	if (err)
		panic("preboot: module %u: %s", kernel, err);
	u64 cmdlen = strnlen(k->string, sizeof(k->string));
	if (cmdlen > li.cmdline_max || PREBOOT_CMDLINE + cmdlen + 1 > PREBOOT_GDT)
		panic("preboot: kernel command line of %lu bytes is too long", cmdlen);

	/* The kernel goes where nothing the loader placed lies: above 1 MiB, below 4 GiB. */
	struct range excl[BOOT_MODS_MAX + 2] = { { 0, MiB(1) }, { bi->mbi.base, bi->mbi.end } };
	unsigned nexcl = 2;
	for (unsigned i = 0; i < bi->nmods; i++)
		excl[nexcl++] = (struct range){ bi->mods[i].start, bi->mods[i].end };
	u64 load;
	if (!memmap_find_top(&hvmem.guest_map, ALIGN_UP(li.init_size, li.align), li.align, GiB(4), excl, nexcl, &load))
		panic("preboot: no room for the kernel (%lu KiB at %lu KiB alignment)", li.init_size >> 10,
		    li.align >> 10);

	target_start = *bios;
	low_saved = phys_ptr(pgalloc(PREBOOT_LOW_BYTES / PAGE_SIZE));
	memcpy(low_saved, phys_ptr(0), PREBOOT_LOW_BYTES);
	lapic_save(&lapic_fw);
	legacy_save(&legacy_fw);
	ahci_fw_save();

	memcpy(phys_ptr(load), img + li.setup_bytes, li.code_bytes);
	char *cmdline = phys_ptr(PREBOOT_CMDLINE);
	memcpy(cmdline, k->string, cmdlen);
	cmdline[cmdlen] = 0;
	u64 *gdt = phys_ptr(PREBOOT_GDT);
	gdt[0] = gdt[1] = 0;
	gdt[LX_BOOT_CS / 8] = 0x00CF9A000000FFFFull; /* flat 4 GiB code, 32-bit */
	gdt[LX_BOOT_DS / 8] = 0x00CF92000000FFFFull; /* flat 4 GiB data */
	err = linux_zero_page(phys_ptr(PREBOOT_ZERO_PAGE), img, &li, &hvmem.guest_map, load, PREBOOT_CMDLINE, rd->start,
	    rd->end - rd->start);
	if (err)
		panic("preboot: %s", err);
	*start = (struct guest_start){ .linux32 = true, .eip = (u32)load, .esi = PREBOOT_ZERO_PAGE, .gdt = PREBOOT_GDT };
	phase = PHASE_PREBOOT;
	LOG("preboot: kernel (module %u, %lu KiB) at %lx, initrd %lx-%lx, command line '%s'\n", kernel,
	    li.code_bytes >> 10, load, rd->start, rd->end - 1, cmdline);
}

/* rep stosq: a wipe of all of the guest's RAM is the costliest thing Parapet does once. */
static void wipe(u64 pa, u64 len)
{
	void *p = phys_ptr(pa);
	u64 n = len / 8;
	__asm__ volatile("rep stosq" : "+D"(p), "+c"(n) : "a"(0ull) : "memory");
	memset(p, 0, len & 7);
}

/* Every page of RAM the preboot guest was given, wiped; conventional memory put back. */
static u64 wipe_preboot_ram(void)
{
	u64 total = 0;
	const struct memmap *m = &hvmem.guest_map;
	for (u32 i = 0; i < m->n; i++) {
		u64 b = m->e[i].base, e = b + m->e[i].len;
		if (m->e[i].type != E820_RAM)
			continue;
		if (e > hvmem.phys_top)
			e = hvmem.phys_top;
		if (b < PREBOOT_LOW_BYTES)
			b = PREBOOT_LOW_BYTES;
		if (b < e) {
			wipe(b, e - b);
			total += e - b;
		}
	}
	memcpy(phys_ptr(0), low_saved, PREBOOT_LOW_BYTES);
	return total + PREBOOT_LOW_BYTES;
}

unsigned long long preboot_handoff(struct vcpu *v)
{
	u64 gpa = v->gpr[RBX], len = v->gpr[RCX];
	if (phase != PHASE_PREBOOT || !v->bsp) {
		if (log_budget_take(&log_budget))
			LOG("handoff: cpu%u: refused: %s\n", v->id,
			    phase == PHASE_TARGET ? "the handoff already happened"
			    : phase == PHASE_NONE ? "there is no preboot guest"
						  : "not the boot CPU");
		return VMMCALL_EPERM;
	}
	bool bad_len;
	const char *err = policy_place_problem(&hvmem.guest_map, hvmem.base, hvmem.end, gpa, len, &bad_len);
	if (!err) {
		memcpy(record, phys_ptr(gpa), len); /* one read: nothing the guest changes later counts */
		err = handoff_install(record, len);
		bad_len = true; /* a bad record is a bad argument */
	}
	if (err) {
		if (log_budget_take(&log_budget))
			LOG("handoff: record at %lx (%lu bytes) refused: %s\n", gpa, len, err);
		return bad_len ? VMMCALL_EINVAL : VMMCALL_EFAULT;
	}
	phase = PHASE_TARGET;
	LOG("handoff: policy record from the preboot guest accepted (%lu bytes at %lx)\n", len, gpa);

	lapic_restore(&lapic_fw);
	unsigned left = apic_init_others(v);
	if (left)
		panic("handoff: %u CPUs did not stop for INIT; not booting the target beside them", left);
	u64 wiped = wipe_preboot_ram();
	legacy_restore(&legacy_fw);
	ioapic_restore();
	pci_init(true);
	ecam_init();
	gmem_set_firmware(pci_mmio_floor(), hvmem.base, hvmem.end);
	LOG("handoff: %lu MiB of the preboot guest's RAM wiped, low memory, PIC, PIT, APICs, IDE reset; "
	    "other CPUs wait for STARTUP; booting the target through INT 13h\n",
	    wiped >> 20);
	v->restart = &target_start;
	return VMMCALL_OK;
}
