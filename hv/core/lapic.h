/*
 * The local APIC of the CPU Parapet runs on (Intel SDM vol. 3 ch. 10-11, AMD APM vol. 2
 * ch. 16): xAPIC registers through the 4 KiB page at APIC_BASE, or x2APIC MSRs 0x800 +
 * offset/16 when IA32_APIC_BASE.EXTD is set. Parapet uses it only to start processors and
 * to interrupt them with NMIs; the guest programs it otherwise.
 */
#ifndef PARAPET_LAPIC_H
#define PARAPET_LAPIC_H

#include "core/types.h"

#define MSR_APIC_BASE 0x0000001Bu
#define APIC_BASE_BSP (1ull << 8)
#define APIC_BASE_EXTD (1ull << 10) /* x2APIC mode */
#define APIC_BASE_EN (1ull << 11)
#define APIC_BASE_ADDR_MASK 0x000FFFFFFFFFF000ull
#define APIC_DEFAULT_BASE 0xFEE00000ull

#define MSR_X2APIC_FIRST 0x800u
#define MSR_X2APIC_ICR 0x830u /* 64-bit: destination in 63:32 */

/* Register offsets in the xAPIC page. */
#define APIC_ID 0x020
#define APIC_VERSION 0x030 /* read-only: version, highest LVT entry */
#define APIC_TPR 0x080
#define APIC_EOI 0x0B0
#define APIC_LDR 0x0D0 /* logical destination, bits 31:24 */
#define APIC_DFR 0x0E0 /* destination format: model in 31:28 */
#define APIC_SVR 0x0F0
#define APIC_ESR 0x280
#define APIC_LVT_CMCI 0x2F0
#define APIC_LVT_TIMER 0x320 /* then thermal, perf, LINT0, LINT1 */
#define APIC_LVT_ERROR 0x370
#define APIC_ICR_LO 0x300
#define APIC_ICR_HI 0x310 /* xAPIC destination, bits 31:24 */

/* Interrupt command register, low dword. */
#define ICR_VECTOR(v) ((v)&0xFFu)
#define ICR_MODE(lo) (((lo) >> 8) & 7u)
#define ICR_MODE_FIXED 0u
#define ICR_MODE_NMI 4u
#define ICR_MODE_INIT 5u
#define ICR_MODE_STARTUP 6u
#define ICR_LOGICAL (1u << 11)
#define ICR_BUSY (1u << 12) /* xAPIC delivery status */
#define ICR_ASSERT (1u << 14)
#define ICR_LEVEL (1u << 15)
#define ICR_SHORTHAND(lo) (((lo) >> 18) & 3u)
#define ICR_DEST_FIELD 0u
#define ICR_SELF 1u
#define ICR_ALL 2u
#define ICR_ALL_BUT_SELF 3u

#define SVR_ENABLE (1u << 8)

#define APIC_ISR 0x100   /* in-service bits, 8 registers 0x10 apart */
#define APIC_TMICT 0x380 /* timer initial count: 0 stops the timer */

/* What firmware left in this CPU's APIC, for putting back (after the preboot guest). */
struct lapic_state {
	u64 base; /* IA32_APIC_BASE */
	u32 svr, tpr, ldr, dfr;
	u32 lvt[6]; /* timer, thermal, performance, LINT0, LINT1, error */
};

void lapic_save(struct lapic_state *s);

/* Back to `s`: out of x2APIC mode if needed (through disabled, the only way out), timer
 * stopped, every in-service interrupt ended, registers rewritten. */
void lapic_restore(const struct lapic_state *s);

/*
 * Where this CPU's xAPIC registers answer: at the base in IA32_APIC_BASE (`apic_base` is that
 * MSR's value), as the architecture moves them with it, unless the platform was found to keep
 * every APIC at one address whatever its base (QEMU maps its APIC window once, at the reset
 * base): then there (lapic_fix_window, from vmm/apic.c).
 */
u64 lapic_window_of(u64 apic_base);
void lapic_fix_window(u64 pa);

/* True when this CPU's APIC is in x2APIC mode. */
bool lapic_x2apic(void);

/* This CPU's APIC ID (x2APIC: 32 bits; xAPIC: bits 31:24 of the ID register). */
u32 lapic_id(void);

/* Read or write a register of this CPU's APIC by its xAPIC offset, in either mode. */
u32 lapic_read(u32 off);
void lapic_write(u32 off, u32 val);

/* Send an IPI from this CPU: physical destination `dest`, low dword `lo`. Waits (bounded)
 * for the previous one to leave; in xAPIC mode the guest's ICR high dword is kept. */
void lapic_send(u32 dest, u32 lo);

/* About a microsecond: one write to the POST-code port (the PC's classic I/O delay). */
void io_delay_us(u32 us);

#endif
