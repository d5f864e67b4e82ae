/*
 * MMIO trap pages: guest-physical pages that the nested page tables mark not present (PT_NONE)
 * or read-only (PT_RO), so each guest access (each write) faults (NPF) and is emulated here. The
 * instruction at CS:RIP is fetched through the guest's page tables (it may span two pages; a page
 * fault on the fetch goes to the guest), decoded (vmm/decode.h lists the forms, in 16-, 32- and
 * 64-bit code) and executed (vmm/emulate.h: registers, flags, REP one element per exit). Each of
 * its accesses goes through the guest's segments (base, type and limit; in 64-bit code the FS and
 * GS bases only, and canonical addresses; #GP or #SS) and page tables (#PF), then:
 *   - on a trap page, to the trap's handler: writes, and reads of PT_NONE traps (a refused read
 *     reads all ones). A read of an PT_RO trap page, which the guest reads without an exit
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
#include "mm/stage2.h"

struct vcpu;

#define MMIO_TRAPS_MAX 64

/* A guest access by v of size 1, 2, 4 or 8 bytes at gpa. A read sets *val; a write passes it.
 * Return false to refuse: the read returns all ones, the write is dropped. */
typedef bool (*mmio_handler)(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val);

/*
 * The trap table: at most MMIO_TRAPS_MAX entries, each a range of whole 4 KiB pages with one
 * access (PT_NONE: every access faults; PT_RO: writes fault), handler and context. Entries
 * never overlap, and a page is trapped in the nested page tables exactly while an entry covers
 * it. Changes are serialised by one lock; the exit path's lookup takes none: each change is
 * published with a sequence count the lookup re-checks (it retries when an entry changed under
 * it). A fault on a page a move or removal is releasing runs the instruction again, as does a
 * fault the nested page tables no longer explain (taken before a change): the guest then sees
 * the page as it is after the change. A handler call that raced a removal (its fault was looked
 * up before the change) may still run once, after mmio_region_remove returned, with the old
 * ctx: drivers keep ctx static (never freed or reused for something else).
 */

/* Trap [gpa, gpa+len) (4 KiB aligned): every access (PT_NONE), or writes only (PT_RO).
 * Before the guest runs only: the nested TLB is not flushed. Returns false when the table is
 * full, a page is trapped already, or a page cannot be trapped (as mmio_region_add). */
bool mmio_trap_add(u64 gpa, u64 len, enum pt_access access, mmio_handler fn, void *ctx);

/* While the guest runs, from any CPU: trap the 4 KiB page at gpa for `access` with (fn, ctx),
 * or set the access of the page (fn, ctx) trap already. False when another handler traps it,
 * it cannot be trapped (Parapet's own region, beyond the nested page tables) or the table is
 * full. The entry is in the table before the page faults, so every fault finds it. No nested
 * TLB is flushed: a CPU that must see the new access at once flushes its own. */
bool mmio_trap_page(u64 gpa, enum pt_access access, mmio_handler fn, void *ctx);

/*
 * Trap regions, while the guest runs, from any CPU's exit handler (also with other locks held,
 * e.g. pci.c's mediation lock). Each returns only after no CPU's nested TLB can hold a
 * translation that contradicts the change (cpus_flush_stage2: this CPU flushes before its next
 * entry, every other one before its next entry or, if it is in the guest, after Parapet's NMI
 * made it leave; a CPU in the host counts at once, so a CPU spinning on a lock the caller holds
 * is no deadlock). Before the guest runs they work too (the flush is then only flagged).
 *
 * mmio_region_add: trap [gpa, gpa+len) (4 KiB aligned, len > 0) for `access` (PT_NONE or
 * PT_RO) with (fn, ctx). Returns a handle >= 0, or -1 when the table is full, a page is already
 * trapped by another region, or a page cannot be trapped (Parapet's hidden region, beyond the
 * nested tables).
 * mmio_region_move: move region h to gpa (same length, access, handler). False, and nothing
 * changed, when the new place cannot be trapped as above (its own old pages do not count as
 * taken); true at once when gpa is where it is.
 * mmio_region_remove: stop trapping; the pages map the hardware (identity) again. The handle
 * may then be reused by a later add.
 */
int mmio_region_add(u64 gpa, u64 len, enum pt_access access, mmio_handler fn, void *ctx);
bool mmio_region_move(int h, u64 gpa);
void mmio_region_remove(int h);

/* One access of size 1, 2, 4 or 8 bytes to what lies at gpa, done as the guest asked (a read
 * sets *val): for a trap page's handler, or a write-only trap's reads. False when gpa cannot be
 * mapped. */
bool mmio_device_access(u64 gpa, unsigned size, bool write, u64 *val);

#endif
