/*
 * Port I/O exits. Only ports registered here are intercepted (the backend's I/O permission
 * bitmap is built from io_hooks); all others pass straight through without an exit.
 */
#include "vmm/io.h"

static struct io_hook hooks[IO_HOOKS_MAX];
static unsigned nhooks;

bool io_hook_register(u16 base, u16 count, io_handler fn, void *ctx)
{
	if (nhooks >= IO_HOOKS_MAX || count == 0 || (u32)base + count > 0x10000)
		return false;
	hooks[nhooks++] = (struct io_hook){ base, count, fn, ctx };
	return true;
}

unsigned io_hooks(const struct io_hook **out)
{
	*out = hooks;
	return nhooks;
}

static u64 size_mask(unsigned size)
{
	return size == 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

void handle_io(struct vcpu *v)
{
	const struct io_exit *io = &v->exit.io;
	const struct io_hook *h = NULL;
	for (unsigned i = 0; i < nhooks; i++)
		if (io->port >= hooks[i].base && io->port < hooks[i].base + hooks[i].count)
			h = &hooks[i];
	if (io->string) {
		/* No hooked device takes string I/O yet: treat it as a device that is absent. */
		if (io->rep)
			v->gpr[RCX] &= ~size_mask(io->addr_size);
	} else if (io->in) {
		u32 val = h ? h->fn(h->ctx, io->port, io->size, true, 0) : 0xFFFFFFFF;
		u64 m = size_mask(io->size);
		v->gpr[RAX] = (v->gpr[RAX] & ~m) | (val & m);
	} else if (h) {
		h->fn(h->ctx, io->port, io->size, false, (u32)(v->gpr[RAX] & size_mask(io->size)));
	}
	v->rip = v->exit.next_rip;
}

u32 io_absent(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	(void)ctx, (void)port, (void)size, (void)in, (void)val;
	return 0xFFFFFFFF;
}
