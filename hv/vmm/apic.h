/*
 * The guest's view of the local APICs: INIT and STARTUP IPIs never reach the hardware, so no
 * processor can start outside Parapet (VEE'09 §4.1). The xAPIC page is trapped for writes
 * (reads go straight to the APIC), the x2APIC ICR (MSR 0x830) and IA32_APIC_BASE for writes.
 * Every INIT or STARTUP, whatever its destination mode or shorthand, is resolved here to
 * the virtual CPUs it addresses and posted to their mailboxes; each target applies it on its
 * own CPU when an NMI from Parapet interrupts it. All other IPIs pass through untouched.
 *
 * Moving the APIC (Intel SDM vol. 3 §11.4.4, AMD APM vol. 2 §16.3.1): a write of
 * IA32_APIC_BASE with another base is performed, and the trap follows it. The nested page
 * tables are shared, so the trapped pages are every page some CPU's APIC was ever moved to
 * (and the page all start at); a write there is an APIC write only when the page is the
 * writing CPU's own enabled xAPIC base. Otherwise it is what the platform decodes for that
 * CPU: in the processor interrupt range FEE00000-FEEFFFFF nothing (dropped; QEMU would take
 * it as an MSI, which may carry INIT), elsewhere the page's memory or device (performed).
 * A base Parapet cannot follow (apic_base_usable, a full table) is written with the address
 * bits left as they were, as on a processor whose APIC base does not move; one beyond the
 * physical address width is #GP, as it is reserved.
 */
#ifndef PARAPET_APIC_H
#define PARAPET_APIC_H

#include "vmm/vcpu.h"
#include "mm/memmap.h"

/* The processor interrupt range: local APIC registers and MSI addresses. */
#define APIC_MSI_BASE 0xFEE00000ull
#define APIC_MSI_END 0xFEF00000ull

/* Trap the xAPIC page (at this CPU's APIC base). Before the guest runs. */
void apic_init(void);

/* The shadows of a vCPU after INIT, read from this CPU's APIC at start. */
void apic_vcpu_init(struct vcpu *v);

/* Does an IPI with ICR low dword `lo` and destination `dest`, sent by `from` in x2APIC (x2)
 * or xAPIC mode, address `to`? (Intel SDM vol. 3 §11.6.2, §11.12.10.) */
bool apic_ipi_addresses(const struct vcpu *from, const struct vcpu *to, u32 lo, u32 dest, bool x2);

/* Would writing `val` to the register at xAPIC offset `off` make a local vector table entry
 * (CMCI, timer, thermal, performance, LINT0, LINT1, error) deliver INIT? LINT0/LINT1 may, by
 * the architecture; Parapet refuses it on every entry: such an INIT would reset the CPU
 * outside Parapet's mediation. */
bool apic_lvt_init(u32 off, u32 val);

/* True for the x2APIC MSRs of the local vector table. */
static inline bool apic_lvt_msr(u32 msr)
{
	return msr == 0x82F || (msr >= 0x832 && msr <= 0x837);
}

/* Whether a CPU's xAPIC may move to `page` under Parapet: the page every APIC starts at
 * (`boot`) and any page of the interrupt range FEE00000-FEEFFFFF (trapped whole) always;
 * otherwise only a hole in the guest's memory map `m`: not RAM, ACPI or NVS, nor reserved
 * (firmware, the PCI configuration window), since Parapet itself reads and writes such memory
 * by physical address, and on the moved CPU that would reach its APIC instead; never below
 * 1 MiB (firmware areas) or in Parapet's region [hv_base, hv_end). Pages other traps hold are
 * refused when the trap is set (vmm/mmio.c). */
bool apic_base_usable(u64 page, u64 boot, const struct memmap *m, u64 hv_base, u64 hv_end);

/* The MSRs intercepted for writes: IA32_APIC_BASE, the x2APIC ICR and LVT. False means #GP. */
bool apic_wrmsr(struct vcpu *v, u32 msr, u64 val);

/* INIT every vCPU but `self` that is not already waiting for STARTUP, and wait (about a
 * second at most) until each is. Returns how many did not come back. */
unsigned apic_init_others(struct vcpu *self);

/* Interrupt t with Parapet's NMI (one in flight per target): it leaves the guest and looks
 * at its mailbox and at cpus_park_if_frozen(). */
void apic_kick(struct vcpu *t);

/* On v's own CPU: whether another CPU posted something for it. */
static inline bool apic_mail_posted(struct vcpu *v)
{
	return __atomic_load_n(&v->mail.init, __ATOMIC_ACQUIRE) || __atomic_load_n(&v->mail.sipi, __ATOMIC_ACQUIRE);
}

/* On v's own CPU: consume a posted INIT. True when one was posted: the caller resets v's
 * state, and v then waits for STARTUP (v->waiting), unless it is the BSP. The local APIC is
 * put back to its INIT state here. */
bool apic_take_init(struct vcpu *v);

/* On v's own CPU, while v->waiting: consume a posted STARTUP. True with its vector. */
bool apic_take_sipi(struct vcpu *v, u8 *vector);

/* On v's own CPU, when an NMI was taken: true if it was Parapet's request, false if it was
 * the guest's own NMI (to be delivered to the guest). */
bool apic_nmi_was_kick(struct vcpu *v);

#endif
