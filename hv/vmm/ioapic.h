/*
 * The I/O APICs' redirection entries (Intel 82093AA datasheet §3.2.4): the guest programs
 * them as it likes, except delivery mode INIT, which would reset a processor behind
 * Parapet's back (QEMU performs an INIT even on a processor in guest mode). Each I/O APIC
 * page the MADT lists is trapped for writes (reads pass): the window write of an entry's
 * low dword with delivery mode INIT is dropped; everything else is written through.
 */
#ifndef PARAPET_IOAPIC_H
#define PARAPET_IOAPIC_H

/* Trap the I/O APICs the MADT lists. Before the guest runs. */
void ioapic_init(void);

/* Put every redirection entry back as it was at ioapic_init() (the handoff from the preboot
 * guest: firmware expects its own, normally all masked). */
void ioapic_restore(void);

#endif
