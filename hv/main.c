/* Parapet's start: parse what the loader gave, move into hidden memory, build the guest's
 * world (memory map, nested page tables, BIOS hooks), and run the guest. */
#include "boot/bootinfo.h"
#include "boot/cmdline.h"
#include "core/cpu.h"
#include "core/log.h"
#include "core/panic.h"
#include "core/pgalloc.h"
#include "drivers/fwcfg/fwcfg.h"
#include "guest/bios.h"
#include "iommu/iommu.h"
#include "power/power.h"
#include "io/ecam.h"
#include "io/pci.h"
#include "handoff/module.h"
#include "handoff/preboot.h"
#include "services/storage.h"
#include "mm/hvmem.h"
#include "mm/stage2.h"
#include "vmm/apic.h"
#include "vmm/backend.h"
#include "vmm/cpus.h"
#include "vmm/gmem.h"
#include "vmm/ioapic.h"
#include "vmm/gwalk.h"
#include "vmm/io.h"

#define PARAPET_VERSION "0.1.0"

static struct boot_info bi;
static struct hv_config cfg;

static const void *phys(u64 pa)
{
	return (const void *)pa; /* the boot page tables identity-map the low 4 GiB */
}

static void log_map(const char *what, const struct memmap *m)
{
	for (u32 i = 0; i < m->n; i++)
		LOG("e820: %s %016lx-%016lx type %u\n", what, m->e[i].base, m->e[i].base + m->e[i].len - 1,
		    m->e[i].type);
}

void hv_main(u32 magic, u32 mbi)
{
	const char *err = bootinfo_parse(magic, mbi, phys, &bi);
	char cerr[128];
	bool cmd_ok = err == NULL && cmdline_parse(bi.cmdline, &cfg, cerr, sizeof(cerr));
	if (!cmd_ok)
		cfg.log = (struct log_config){ LOG_SINK_E9, 0 };
	log_init(&cfg.log);
	LOG("Parapet " PARAPET_VERSION " (%s)\n", magic == MB2_BOOT_MAGIC ? "multiboot2" : "multiboot");
	if (err)
		panic("boot: %s", err);
	if (!cmd_ok)
		panic("cmdline: %s", cerr);
	LOG("cmdline: '%s'\n", bi.cmdline);
	backend_select();

	hvmem_setup(&bi);
	cpu_tables_init();
	LOG("mem: hypervisor at %lx-%lx (%lu MiB, hidden), image %lu KiB\n", hvmem.base, hvmem.end - 1,
	    (hvmem.end - hvmem.base) >> 20, hvmem.image_size >> 10);
	if (cfg.iommu_to_guest)
		LOG("iommu: left to the guest (iommu=guest): DMA isolation OFF\n");
	else
		iommu_init(); /* before any guest code, the preboot guest's included */

	unsigned preboot_kernel;
	bool two_step = preboot_find(&bi, &preboot_kernel);
	handoff_take_policy(&bi);
	if (two_step && storage_active())
		panic("boot: a policy record module and a preboot kernel: the keys come from one or the other");
	if (cfg.log.sink == LOG_SINK_COM) {
		io_hook_register(cfg.log.com_port, 8, io_absent, NULL);
		LOG("io: COM port %x hidden from the guest\n", cfg.log.com_port);
	}
	u64 stage2 = stage2_build(backend->stage2);
	iommu_hide();
	gw_init();
	if (!two_step) { /* else at the handoff, with the preboot guest's policy */
		pci_init(false);
		ecam_init();
	}
	struct guest_start start;
	bios_prepare(&hvmem.guest_map, cfg.boot_drive, &start);
	gmem_init(&hvmem.guest_map);
	gmem_set_firmware(two_step ? 0 : pci_mmio_floor(), hvmem.base, hvmem.end); /* two-step: at the handoff */
	fwcfg_init();
	power_init();
	log_map("firmware", &bi.map);
	log_map("guest", &hvmem.guest_map);
	apic_init();
	ioapic_init();
	backend->init(stage2);
	io_set_intercept(backend->io_intercept);
	msr_init();
	struct vcpu *bsp = cpus_start();
	if (two_step)
		preboot_prepare(&bi, preboot_kernel, &start, &start);
	LOG("mem: %lu KiB of hypervisor memory used, %lu KiB free\n", pgalloc_used() >> 10, pgalloc_free() >> 10);
	backend->enable(bsp);
	bsp->restart = &start;
	backend->run(bsp);
}
