/*
 * MMIO trap pages: guest-physical pages that the nested page tables mark not present, so each
 * guest access faults (NPF) and is emulated here: the instruction at CS:RIP is fetched through
 * the guest's page tables, decoded (vmm/decode.h), and its access handed to the trap's handler.
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

#endif
