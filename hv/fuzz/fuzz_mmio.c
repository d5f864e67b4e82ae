/* libFuzzer: a nested page fault on a trap page with any registers, segments, paging mode, guest
 * memory and instruction bytes: mmio_handle_npf hands the handlers only accesses within their
 * trap pages, completes the instruction or injects an exception leaving the registers as they
 * were, and changes no RFLAGS bit but the arithmetic ones. */
#include "vmm/mmio.h"
#include "vmm/vcpu.h"
#include "vmm/emulate.h"
#include "core/log.h"
#include "core/x86.h"
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include <string.h>

void log_sink_init(const struct log_config *cfg)
{
	(void)cfg;
}
void log_sink_write(const char *s, size_t n)
{
	(void)s, (void)n;
}
bool stage2_trap(u64 gpa, enum pt_access a)
{
	(void)gpa, (void)a;
	return true;
}
bool stage2_allows(u64 gpa, bool write)
{
	(void)gpa, (void)write;
	return false;
}
void cpus_flush_stage2(void)
{
}

/* Trapped: 0x8000 every access, 0x9000 writes only (both in the fake RAM), 0x20000 every access
 * (not RAM). */
static const u64 trap_pages[3] = { 0x8000, 0x9000, 0x20000 };
static unsigned calls, writes;

static bool device(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	(void)v;
	u64 page = (u64)(uintptr_t)ctx;
	if ((size != 1 && size != 2 && size != 4 && size != 8) || gpa < page || gpa + size > page + 4096)
		abort();
	if (writes || ++calls > 2)
		abort(); /* the write is the last access, one per instruction */
	if (write)
		writes++;
	else
		*val = 0x0123456789ABCDEFull;
	return gpa & 8;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static bool added;
	if (!added) {
		for (unsigned i = 0; i < 3; i++)
			mmio_trap_add(trap_pages[i], 4096, i == 1 ? PT_RO : PT_NONE, device,
			    (void *)(uintptr_t)trap_pages[i]);
		added = true;
	}
	const u8 *p = data;
	size_t n = size;
	struct vcpu v;
	u64 ctl = take_vcpu(&p, &n, &v);
	v.rflags = take(&p, &n, 4) | 2;
	v.exit.reason = EXIT_NPF;
	v.exit.npf.gpa = trap_pages[(ctl >> 8) % 3] + take(&p, &n, 2) % 4096;
	v.exit.npf.access = ctl & (1 << 10) ? NPF_WRITE : NPF_READ;
	v.exit.npf.in_walk = ctl & (1 << 11);
	/* Each register: any value, near the faulting address, or small. */
	for (int i = 0; i < 16; i++) {
		u64 how = take(&p, &n, 1);
		v.gpr[i] = how & 1   ? take(&p, &n, 8)
			   : how & 2 ? v.exit.npf.gpa + (u64)(int8_t)take(&p, &n, 1)
				     : how >> 2;
	}
	/* The instruction bytes where CS:RIP is without paging; the rest is guest memory. */
	v.rip = take(&p, &n, 2);
	u8 code[INSN_MAX_LEN];
	unsigned len = (unsigned)(n < INSN_MAX_LEN ? n : INSN_MAX_LEN);
	memcpy(code, p, len);
	p += len, n -= len;
	fake_mem_load(p, n);
	u64 at = v.seg[SEG_CS].base + v.rip;
	if (at + len <= FAKE_MEM_SIZE)
		memcpy(fake_mem + at, code, len);

	struct vcpu old = v;
	calls = writes = 0;
	if (!mmio_handle_npf(&v))
		abort();
	if (v.inject.valid) {
		if (memcmp(v.gpr, old.gpr, sizeof(v.gpr)) != 0 || v.rip != old.rip || v.rflags != old.rflags)
			abort();
	} else if ((v.rflags ^ old.rflags) & ~RFLAGS_ARITH) {
		abort();
	} else if (v.rip == old.rip && memcmp(v.gpr, old.gpr, sizeof(v.gpr)) == 0) {
		abort(); /* completed (or one REP element) but nothing moved */
	}
	return 0;
}
