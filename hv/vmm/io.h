/*
 * Port I/O hooks: a driver registers the ports it mediates; nothing else exits.
 * See docs/io.md for the semantics of string I/O and of accesses that straddle hooks.
 */
#ifndef PARAPET_IO_H
#define PARAPET_IO_H

#include "vmm/vcpu.h"

#define IO_HOOKS_MAX 32

/* The most a string instruction moves in one exit; the guest re-executes it for the rest. */
#define IO_STR_MAX_BYTES (16 * 1024)

/* Called for an intercepted IN (returns the value) or OUT (val) of `size` bytes. */
typedef u32 (*io_handler)(void *ctx, u16 port, unsigned size, bool in, u32 val);

/*
 * String I/O: `count` elements of `size` bytes, in the order the instruction moves them.
 * OUT: buf holds the data. IN: fill buf. Returns the number of elements handled (<= count);
 * fewer stops the instruction there (registers advanced by the number handled, the guest
 * re-executes the instruction for the rest, which calls the handler again).
 */
typedef unsigned (*io_str_handler)(void *ctx, u16 port, unsigned size, bool in, u8 *buf, unsigned count);

/*
 * Hook ports [base, base+count). str may be NULL: string I/O then calls fn once per element,
 * still in one exit. Ranges of hooks never overlap. Returns a handle >= 0, or -1 (no slot,
 * overlap, or a range beyond port 0xFFFF). Hooks take effect at once on every CPU.
 */
int io_hook_add(u16 base, u16 count, io_handler fn, io_str_handler str, void *ctx);
/* The device's ports moved (e.g. a BAR write). False, and nothing changes, when the new range
 * overlaps another hook or passes port 0xFFFF. */
bool io_hook_move(int handle, u16 new_base);
void io_hook_remove(int handle);
/* The first interface: io_hook_add without a string handler. */
bool io_hook_register(u16 base, u16 count, io_handler fn, void *ctx);

/* A handler for ports hidden from the guest: reads all ones, writes ignored. */
u32 io_absent(void *ctx, u16 port, unsigned size, bool in, u32 val);

/*
 * The backend's I/O intercept bitmap: io.c calls fn(base, count, on) whenever hooked ports
 * change. Registering it replays every current hook.
 */
typedef void (*io_intercept_fn)(u16 base, u32 count, bool on);
void io_set_intercept(io_intercept_fn fn);

/* Parapet's own access to a hardware port (sizes 1, 2, 4). Host tests provide a fake. */
u32 io_port_hw(u16 port, unsigned size, bool in, u32 val);

#endif
