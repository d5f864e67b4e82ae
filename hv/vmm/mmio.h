/*
 * MMIO trap pages: guest-physical pages that the nested page tables mark not present (NPT_NONE)
 * or read-only (NPT_RO), so each guest access (each write) faults (NPF) and is emulated here. The
 * instruction at CS:RIP is fetched through the guest's page tables (it may span two pages; a page
 * fault on the fetch goes to the guest), decoded (vmm/decode.h lists the forms, in 16-, 32- and
 * 64-bit code) and executed (vmm/emulate.h: registers, flags, REP one element per exit). Each of
 * its accesses goes through the guest's segments (base, type and limit; in 64-bit code the FS and
 * GS bases only, and canonical addresses; #GP or #SS) and page tables (#PF), then:
 *   - on a trap page, to the trap's handler: writes, and reads of NPT_NONE traps (a refused read
 *     reads all ones). A read of an NPT_RO trap page, which the guest reads without an exit
 *     (the read half of a read-modify-write or of MOVS), goes to the device itself;
 *   - on guest RAM (the other side of MOVS, a page not trapped), to memory (gw_copy);
 *   - anywhere else: refused.
 * Refused, with #GP and a log line that names the bytes (rate-limited): a form decode.h does not
 * list, or LOCK where the processor would raise #UD; an access across a page boundary with a trap
 * page on either side; an instruction whose first access the nested page tables stop is not on
 * the faulting page in the fault's direction, or that writes before it, or never touches it (the
 * code changed between the fault and the fetch, from another CPU).
 * A read-modify-write (LOCK, XCHG included) is one read and then one write of the handler: it
 * cannot be atomic against the device, nor against another CPU's access to the same register.
 */
#ifndef PARAPET_MMIO_H
#define PARAPET_MMIO_H

#include "core/types.h"
#include "mm/npt.h"

struct vcpu;

#define MMIO_TRAPS_MAX 64

/* A guest access by v of size 1, 2, 4 or 8 bytes at gpa. A read sets *val; a write passes it.
 * Return false to refuse: the read returns all ones, the write is dropped. */
typedef bool (*mmio_handler)(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val);

/* Trap [gpa, gpa+len) (4 KiB aligned): every access (NPT_NONE), or writes only (NPT_RO).
 * Before the guest runs only: the nested TLB is not flushed. Returns false when the table is
 * full or the nested page tables cannot be split. */
bool mmio_trap_add(u64 gpa, u64 len, enum npt_access access, mmio_handler fn, void *ctx);

/* While the guest runs, from any CPU: trap the 4 KiB page at gpa for `access` with (fn, ctx),
 * or set the access of the page (fn, ctx) trap already. False when another handler traps it,
 * it cannot be trapped (Parapet's own region, beyond the nested page tables) or the table is
 * full. The entry is in the table before the page faults, so every fault finds it. No nested
 * TLB is flushed: a CPU that must see the new access at once flushes its own. */
bool mmio_trap_page(u64 gpa, enum npt_access access, mmio_handler fn, void *ctx);

/* One access of size 1, 2, 4 or 8 bytes to what lies at gpa, done as the guest asked (a read
 * sets *val): for a trap page's handler, or a write-only trap's reads. False when gpa cannot be
 * mapped. */
bool mmio_device_access(u64 gpa, unsigned size, bool write, u64 *val);

#endif
