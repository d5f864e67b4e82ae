/* Resets and power-off, wiped first; the ACPI facts read at init. See power.h. */
#include "power/internal.h"
#include "io/pci.h"
#include "mm/hvmem.h"
#include "services/storage.h"
#include "vmm/cpus.h"
#include "vmm/io.h"
#include "vmm/mmio.h"
#include "core/lapic.h"
#include "core/log.h"
#include "core/platform.h"
#include "core/x86.h"

#define PORT_SYSCTL_A 0x92 /* bit 0: fast reset (bit 1: A20) */
#define PORT_KBC_DATA 0x60
#define PORT_KBC_CMD 0x64
#define KBC_WRITE_OUTPORT 0xD1 /* the next data byte is the output port: bit 0 low resets */
#define RCR_RST_CPU 0x04       /* 0xCF9: a 0 -> 1 transition of bit 2 resets */

struct acpi_pm pm;
bool pm_ok;
u64 pm_rsdp;
struct power_stats power_stats;

static bool kbc_outport; /* the last KBC command was KBC_WRITE_OUTPORT */

void power_wipe(struct vcpu *v, const char *why)
{
#ifndef PARAPET_TEST_NO_WIPE
	storage_wipe();
	LOG("power: cpu%u: %s: keys wiped\n", v ? v->id : 0, why);
#else
	LOG("power: cpu%u: %s: NOT wiped (a test build without the wipe)\n", v ? v->id : 0, why);
#endif
}

__noreturn void power_terminal(struct vcpu *v, const char *why, u16 port, unsigned size, u32 val)
{
	cpus_freeze_others(v);
	power_wipe(v, why);
	if (size)
		io_port_hw(port, size, false, val);
	io_delay_us(200000);
	LOG("power: the machine is still running after '%s'; resetting it\n", why);
	platform_reset();
}

__noreturn void power_guest_shutdown(struct vcpu *v)
{
	LOG("vmm: cpu%u: guest shutdown (triple fault) at rip=%lx; resetting the machine\n", v->id, v->rip);
	power_terminal(v, "triple fault", 0, 0, 0);
}

/* The bytes of an access at `port` of `size` bytes that land on `target`: true with *byte. */
static bool byte_at(u16 port, unsigned size, u32 val, u16 target, u8 *byte)
{
	if (target < port || target >= port + size)
		return false;
	*byte = (u8)(val >> 8 * (target - port));
	return true;
}

/* A write of `val` that would reset through the FADT's RESET_REG in I/O space? */
static bool reset_reg_hit(u16 port, unsigned size, u32 val)
{
	u8 b;
	return pm.has_reset_reg && pm.reset_reg.space == GAS_SPACE_IO && pm.reset_reg.addr <= 0xFFFF &&
	       byte_at(port, size, val, (u16)pm.reset_reg.addr, &b) && b == pm.reset_value;
}

u32 power_cf9_io(u16 port, unsigned size, bool in, u32 val)
{
	u8 b;
	if (!in && ((byte_at(port, size, val, 0xCF9, &b) && (b & RCR_RST_CPU)) || reset_reg_hit(port, size, val)))
		power_terminal(cpus_self(), "reset control register (port CF9)", port, size, val);
	return io_port_hw(port, size, in, val);
}

/* Ports 0x92, 0x60 and 0x64 (one byte each), and the RESET_REG port when it is another. */
static u32 reset_ports(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	(void)ctx;
	u8 b = (u8)val;
	if (in)
		return io_port_hw(port, size, in, val);
	if (port == PORT_SYSCTL_A && (b & 1))
		power_terminal(cpus_self(), "fast reset (port 92 bit 0)", port, size, val);
	if (port == PORT_KBC_CMD) {
		bool pulse_reset = b >= 0xF0 && !(b & 1);
		if (pulse_reset)
			power_terminal(cpus_self(), "keyboard controller reset pulse (port 64)", port, size, val);
		__atomic_store_n(&kbc_outport, b == KBC_WRITE_OUTPORT, __ATOMIC_RELAXED);
	}
	if (port == PORT_KBC_DATA && __atomic_exchange_n(&kbc_outport, false, __ATOMIC_RELAXED) && !(b & 1))
		power_terminal(cpus_self(), "keyboard controller output port (port 60)", port, size, val);
	if (reset_reg_hit(port, size, val))
		power_terminal(cpus_self(), "FADT RESET_REG", port, size, val);
	return io_port_hw(port, size, in, val);
}

/* A RESET_REG in memory space: its page traps writes. */
static bool reset_reg_mmio(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	(void)ctx;
	if (!write)
		return false; /* reads are not trapped */
	u64 at = pm.reset_reg.addr;
	bool resets = gpa <= at && at < gpa + size && (u8)(*val >> 8 * (at - gpa)) == pm.reset_value;
	if (resets) {
		cpus_freeze_others(v);
		power_wipe(v, "FADT RESET_REG (memory)");
	}
	volatile void *p = phys_ptr(gpa);
	switch (size) {
	case 1:
		*(volatile u8 *)p = (u8)*val;
		break;
	case 2:
		*(volatile u16 *)p = (u16)*val;
		break;
	case 4:
		*(volatile u32 *)p = (u32)*val;
		break;
	default:
		*(volatile u64 *)p = *val;
		break;
	}
	if (resets) {
		io_delay_us(200000);
		platform_reset();
	}
	return true;
}

/* PM1a/PM1b control: writes with SLP_EN go to sleep.c; everything else to the hardware. */
static u32 pm1_cnt_io(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	u16 base = (u16)(uintptr_t)ctx;
	u32 v16 = port == base ? val : val << 8 * (port - base);
	if (!in && (v16 & PM1_CNT_SLP_EN))
		power_sleep(cpus_self(), port, size, val);
	else
		return io_port_hw(port, size, in, val);
	return 0;
}

static void hook(u16 port, u16 count, io_handler fn, void *ctx, const char *what)
{
	if (io_hook_add(port, count, fn, NULL, ctx) < 0)
		LOG("power: cannot hook %s at port %x (in use): that path is NOT mediated\n", what, port);
}

void power_init(void)
{
	char why[96];
	pm_rsdp = acpi_find_rsdp(hvmem_outside);
	u64 fadt = pm_rsdp ? acpi_find_table(hvmem_outside, pm_rsdp, "FACP") : 0;
	pm_ok = fadt && acpi_pm_read(hvmem_outside, fadt, &pm, why, sizeof(why));
	power_sleep_init();
	pci_set_other_ports(power_cf9_io);
	hook(PORT_SYSCTL_A, 1, reset_ports, NULL, "port 92");
	hook(PORT_KBC_DATA, 1, reset_ports, NULL, "the keyboard controller's data port");
	hook(PORT_KBC_CMD, 1, reset_ports, NULL, "the keyboard controller's command port");
	if (!pm_ok) {
		LOG("power: no usable FADT (%s): ACPI sleep not mediated; resets wiped\n", fadt ? why : "none found");
		return;
	}
	if (pm.pm1a_cnt)
		hook(pm.pm1a_cnt, 2, pm1_cnt_io, (void *)(uintptr_t)pm.pm1a_cnt, "PM1a_CNT");
	if (pm.pm1b_cnt)
		hook(pm.pm1b_cnt, 2, pm1_cnt_io, (void *)(uintptr_t)pm.pm1b_cnt, "PM1b_CNT");
	if (pm.pm1a_evt)
		hook(pm.pm1a_evt, 2, power_pm1_status_io, NULL, "PM1a_STS");
	u64 r = pm.reset_reg.addr;
	if (pm.has_reset_reg && pm.reset_reg.space == GAS_SPACE_IO && r <= 0xFFFF && !(r >= 0xCF8 && r <= 0xCFB) &&
	    r != PORT_SYSCTL_A && r != PORT_KBC_DATA && r != PORT_KBC_CMD)
		hook((u16)r, 1, reset_ports, NULL, "RESET_REG");
	if (pm.has_reset_reg && pm.reset_reg.space == GAS_SPACE_MEMORY &&
	    !mmio_trap_add(r & ~0xFFFull, PAGE_SIZE, PT_RO, reset_reg_mmio, NULL))
		LOG("power: cannot trap RESET_REG at %lx: that path is NOT mediated\n", r);
	if (pm.pm1_in_memory || (pm.flags & FADT_HW_REDUCED_ACPI))
		LOG("power: PM1 control in memory space or a hardware-reduced platform: ACPI sleep NOT mediated\n");
	LOG("power: PM1a_CNT %x PM1b_CNT %x PM1a_STS %x, FACS %lx, RESET_REG %s %lx=%x; SLP_TYP S1 %d S3 %d S4 %d S5 %d\n",
	    pm.pm1a_cnt, pm.pm1b_cnt, pm.pm1a_evt, pm.facs,
	    !pm.has_reset_reg                    ? "none"
	    : pm.reset_reg.space == GAS_SPACE_IO ? "io"
						 : "mem",
	    r, pm.reset_value, pm.sx_present[1] ? pm.slp_typa[1] : -1, pm.sx_present[3] ? pm.slp_typa[3] : -1,
	    pm.sx_present[4] ? pm.slp_typa[4] : -1, pm.sx_present[5] ? pm.slp_typa[5] : -1);
}
