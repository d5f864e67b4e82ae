/* libFuzzer: INS/OUTS emulation with any registers, segments, paging mode and guest memory:
 * it stays within guest RAM and the per-exit bound, never loops, and keeps its accounting. */
#include "vmm/io.h"
#include "vmm/gwalk.h"
#include "core/log.h"
#include "core/x86.h"
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include <string.h>

static unsigned handled, calls;

u32 io_port_hw(u16 port, unsigned size, bool in, u32 val)
{
	(void)port, (void)size, (void)val;
	return in ? 0xFFFFFFFF : 0;
}
void log_sink_init(const struct log_config *cfg)
{
	(void)cfg;
}
void log_sink_write(const char *s, size_t n)
{
	(void)s, (void)n;
}

static unsigned limit;

static unsigned str(void *ctx, u16 port, unsigned size, bool in, u8 *buf, unsigned count)
{
	(void)ctx, (void)port;
	calls++;
	if (count * size > IO_STR_MAX_BYTES)
		abort();
	unsigned k = limit && count > limit ? limit : count;
	for (unsigned i = 0; i < k * size; i++)
		buf[i] = in ? (u8)i : buf[i] ^ 1; /* reads all of buf for OUTS */
	handled += k;
	return k;
}

static u32 fn(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	(void)ctx, (void)port, (void)size, (void)in, (void)val;
	return 0x12345678;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static bool hooked;
	if (!hooked) {
		io_hook_add(0x1F0, 8, fn, str, NULL);
		io_hook_add(0x170, 8, fn, NULL, NULL);
		hooked = true;
	}
	const u8 *p = data;
	size_t n = size;
	struct vcpu v;
	u64 ctl = take_vcpu(&p, &n, &v);
	v.rflags = 2 | (ctl & 16 ? 1u << 10 : 0) | (ctl & 32 ? 1u << 17 : 0);
	v.gpr[RCX] = take(&p, &n, 4);
	v.gpr[RSI] = take(&p, &n, 8);
	v.gpr[RDI] = take(&p, &n, 8);
	v.rip = take(&p, &n, 2);
	u64 io = take(&p, &n, 4);
	static const u16 ports[4] = { 0x1F0, 0x1EE, 0x170, 0x80 };
	static const u8 sizes[3] = { 1, 2, 4 }, asizes[3] = { 2, 4, 8 };
	v.exit.reason = EXIT_IO;
	v.exit.io = (struct io_exit){ ports[io & 3], sizes[(io >> 2) % 3], asizes[(io >> 4) % 3], io & 64, true,
		io & 128 };
	v.exit.next_rip = v.rip + ((io >> 8) & 15);
	limit = (unsigned)(io >> 12) & 0x3FF;
	fake_mem_load(p, n);

	u64 rcx0 = v.gpr[RCX], rip0 = v.rip;
	handled = calls = 0;
	handle_io(&v);
	if (calls > 1)
		abort();
	if (v.exit.io.rep) {
		u64 m = v.exit.io.addr_size == 8 ? ~0ull : v.exit.io.addr_size == 4 ? 0xFFFFFFFFull : 0xFFFF;
		if (calls && ((rcx0 - v.gpr[RCX]) & m) != handled)
			abort();
	}
	if (v.rip != rip0 && v.rip != v.exit.next_rip)
		abort();
	if (v.inject.valid && v.rip != rip0)
		abort();
	return 0;
}
