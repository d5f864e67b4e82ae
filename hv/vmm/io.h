/* Port I/O hooks: a driver registers the ports it mediates; nothing else exits. */
#ifndef PARAPET_IO_H
#define PARAPET_IO_H

#include "vmm/vcpu.h"

#define IO_HOOKS_MAX 32

/* Called for an intercepted IN (returns the value) or OUT (val) of `size` bytes. */
typedef u32 (*io_handler)(void *ctx, u16 port, unsigned size, bool in, u32 val);

struct io_hook {
	u16 base, count;
	io_handler fn;
	void *ctx;
};

bool io_hook_register(u16 base, u16 count, io_handler fn, void *ctx);
unsigned io_hooks(const struct io_hook **out);

/* A handler for ports hidden from the guest: reads all ones, writes ignored. */
u32 io_absent(void *ctx, u16 port, unsigned size, bool in, u32 val);

#endif
