/* Port I/O hooks, string I/O as whole blocks (page crossings, DF=1, faults, bounds, address
 * wrap, segment overrides) and MMIO instruction emulation, on fake guest memory. */
#include "test.h"
#include "fakeguest.h"
#include "vmm/io.h"
#include "vmm/mmio.h"
#include "vmm/gwalk.h"
#include "core/x86.h"
#include <string.h>

/* A fake of the nested page tables: the access of each page set so far (RW otherwise); pages
 * of the MiB at FAKE_NPT_HIDDEN cannot be trapped (as Parapet's region), nor those of the absent
 * window, which nothing maps (beyond the platform). */
#define FAKE_NPT_HIDDEN 0x40000000ull
#define FAKE_NPT_ABSENT(gpa) ((gpa) >= 0x900000 && (gpa) < 0xA00000)
static struct {
	u64 page;
	enum pt_access access;
} npt_pages[256];
static unsigned npt_npages, npt_flushes;

static enum pt_access npt_of(u64 gpa)
{
	for (unsigned i = 0; i < npt_npages; i++)
		if (npt_pages[i].page == (gpa & ~4095ull))
			return npt_pages[i].access;
	return PT_RW;
}

bool stage2_trap(u64 gpa, enum pt_access a)
{
	if ((gpa >= FAKE_NPT_HIDDEN && gpa < FAKE_NPT_HIDDEN + 0x100000) || FAKE_NPT_ABSENT(gpa))
		return false;
	for (unsigned i = 0; i < npt_npages; i++)
		if (npt_pages[i].page == gpa) {
			npt_pages[i].access = a;
			return true;
		}
	if (npt_npages == 256)
		return false;
	npt_pages[npt_npages].page = gpa;
	npt_pages[npt_npages++].access = a;
	return true;
}

bool stage2_allows(u64 gpa, bool write)
{
	enum pt_access a = FAKE_NPT_ABSENT(gpa) ? PT_NONE : npt_of(gpa);
	return a == PT_RW || (a == PT_RO && !write);
}

static void (*during_flush)(void); /* what "another CPU" does while a change is flushed */

void cpus_flush_stage2(void)
{
	npt_flushes++;
	if (during_flush)
		during_flush();
}

/* Set by test_pci.c's fake io_port_hw for ports other than the PCI ones. */
extern u16 fake_hw_port;
extern unsigned fake_hw_size;

#define FLAT_DATA (SEG_ATTR_P | SEG_ATTR_S | 0x3 | SEG_ATTR_DB | 0x800)
#define FLAT_CODE (SEG_ATTR_P | SEG_ATTR_S | 0xB | SEG_ATTR_DB | 0x800)
#define CODE64 (SEG_ATTR_P | SEG_ATTR_S | 0xB | SEG_ATTR_L | 0x800)

/* ---- A device with a string handler that records what it got. ---- */

static struct {
	unsigned calls, last_count, fn_calls, limit;
	u16 port;
	u8 data[65536];
	unsigned len;
	u8 next;
} dev;

static unsigned dev_str(void *ctx, u16 port, unsigned size, bool in, u8 *buf, unsigned count)
{
	(void)ctx;
	dev.calls++;
	dev.last_count = count;
	dev.port = port;
	if (dev.limit && count > dev.limit)
		count = dev.limit;
	for (unsigned i = 0; i < count * size; i++) {
		if (in)
			buf[i] = dev.next++;
		else if (dev.len < sizeof(dev.data))
			dev.data[dev.len++] = buf[i];
	}
	return count;
}

static u32 dev_fn(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	(void)ctx;
	dev.fn_calls++;
	dev.port = port;
	if (in) {
		u32 v = 0;
		for (unsigned i = 0; i < size; i++)
			v |= (u32)dev.next++ << (8 * i);
		return v;
	}
	for (unsigned i = 0; i < size; i++)
		dev.data[dev.len++] = (u8)(val >> (8 * i));
	return 0;
}

static u8 iopm[0x10000 / 8];
static void fake_intercept(u16 base, u32 count, bool on)
{
	for (u32 p = base; p < (u32)base + count; p++)
		iopm[p / 8] = on ? iopm[p / 8] | (u8)(1u << (p % 8)) : iopm[p / 8] & (u8) ~(1u << (p % 8));
}
static bool intercepted(u16 p)
{
	return iopm[p / 8] & (1u << (p % 8));
}

static void reset_dev(void)
{
	memset(&dev, 0, sizeof(dev));
	dev.next = 1;
}

/* A vCPU in flat 32-bit protected mode without paging (linear = physical), at a string I/O exit. */
static struct vcpu flat(u16 port, unsigned size, bool in, bool rep, unsigned asize)
{
	struct vcpu v;
	memset(&v, 0, sizeof(v));
	v.cr0 = CR0_PE;
	for (int s = 0; s < SEG_NR; s++)
		v.seg[s] = (struct vseg){ 0, 0xFFFFFFFF, 0x10, FLAT_DATA };
	v.seg[SEG_CS] = (struct vseg){ 0, 0xFFFFFFFF, 0x08, FLAT_CODE };
	v.rflags = 2;
	v.rip = 0x1000;
	v.exit.reason = EXIT_IO;
	v.exit.next_rip = 0x1002;
	v.exit.io = (struct io_exit){ port, (u8)size, (u8)asize, in, true, rep };
	/* The instruction, for OUTS: rep outs */
	((u8 *)fg(0x1000))[0] = 0xF3;
	((u8 *)fg(0x1000))[1] = size == 1 ? 0x6E : 0x6F;
	return v;
}

static int h;

static void begin(void)
{
	fg_begin();
	reset_dev();
	io_set_intercept(fake_intercept);
	h = io_hook_add(0x1F0, 8, dev_fn, dev_str, NULL);
	CHECK(h >= 0);
}

static void end(void)
{
	io_hook_remove(h);
	io_set_intercept(NULL);
	fg_end();
}

static void ins_one_block_across_pages(void)
{
	begin();
	struct vcpu v = flat(0x1F0, 2, true, true, 4);
	v.gpr[RCX] = 256;
	v.gpr[RDI] = 0x10F00;
	handle_io(&v);
	CHECK_EQ(dev.calls, 1);
	CHECK_EQ(dev.last_count, 256);
	CHECK_EQ(v.gpr[RCX], 0);
	CHECK_EQ(v.gpr[RDI], 0x11100);
	CHECK_EQ(v.rip, 0x1002);
	CHECK(!v.inject.valid);
	for (unsigned i = 0; i < 512; i++)
		CHECK_EQ(((u8 *)fg(0x10F00))[i], (u8)(i + 1));
	CHECK_EQ(((u8 *)fg(0x11100))[0], 0);
	end();
}

static void bounded_per_exit(void)
{
	begin();
	struct vcpu v = flat(0x1F0, 1, true, true, 4);
	v.gpr[RCX] = 40000;
	v.gpr[RDI] = 0x100000;
	unsigned exits = 0;
	while (v.rip == 0x1000 && exits < 10) {
		handle_io(&v);
		exits++;
		CHECK(dev.last_count <= IO_STR_MAX_BYTES);
	}
	CHECK_EQ(exits, 3);
	CHECK_EQ(dev.calls, 3);
	CHECK_EQ(v.gpr[RCX], 0);
	CHECK_EQ(v.gpr[RDI], 0x100000 + 40000);
	CHECK_EQ(((u8 *)fg(0x100000))[39999], (u8)(40000));
	end();
}

/* With RFLAGS.TF, or an I/O breakpoint on the port, one element per exit: the hardware raises
 * #DB after each iteration of a REP string instruction. */
static void one_element_when_trapping(void)
{
	begin();
	struct vcpu v = flat(0x1F0, 1, true, true, 4);
	v.rflags |= 1u << 8;
	v.gpr[RCX] = 3;
	v.gpr[RDI] = 0x100000;
	handle_io(&v);
	CHECK_EQ(dev.last_count, 1);
	CHECK_EQ(v.gpr[RCX], 2);
	CHECK_EQ(v.gpr[RDI], 0x100001);
	CHECK_EQ(v.rip, 0x1000); /* not done: the #DB reports the REP instruction */
	v.rflags &= ~(1ull << 8);
	v.cr4 = 1u << 3;                 /* CR4.DE */
	v.dr7 = 1 | 2u << 16 | 1u << 18; /* L0, I/O, two bytes */
	v.dr[0] = 0x1F1;                 /* 0x1F0-0x1F1 */
	handle_io(&v);
	CHECK_EQ(dev.last_count, 1);
	CHECK_EQ(v.gpr[RCX], 1);
	v.dr[0] = 0x1F2; /* another port: the rest in one go */
	handle_io(&v);
	CHECK_EQ(v.gpr[RCX], 0);
	CHECK_EQ(v.rip, 0x1002);
	end();
}

static void outs_backwards(void)
{
	begin();
	struct vcpu v = flat(0x1F0, 1, false, true, 4);
	v.rflags |= 1u << 10;
	v.gpr[RCX] = 5;
	v.gpr[RSI] = 0x20004;
	for (int i = 0; i < 5; i++)
		((u8 *)fg(0x20000))[i] = (u8)(i + 1);
	handle_io(&v);
	CHECK_EQ(dev.len, 5);
	for (int i = 0; i < 5; i++)
		CHECK_EQ(dev.data[i], 5 - i);
	CHECK_EQ(v.gpr[RSI], 0x1FFFF);
	CHECK_EQ(v.rip, 0x1002);
	/* Words, backwards across a page boundary: elements at 0x21000, 0x20FFE, 0x20FFC. */
	reset_dev();
	v = flat(0x1F0, 2, false, true, 4);
	v.rflags |= 1u << 10;
	v.gpr[RCX] = 3;
	v.gpr[RSI] = 0x21000;
	const u8 mem[6] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66 }; /* at 0x20FFC */
	memcpy(fg(0x20FFC), mem, 6);
	handle_io(&v);
	const u8 want[6] = { 0x55, 0x66, 0x33, 0x44, 0x11, 0x22 };
	CHECK_EQ(dev.len, 6);
	CHECK(!memcmp(dev.data, want, 6));
	CHECK_EQ(v.gpr[RSI], 0x20FFA);
	end();
}

/* Long mode: the code identity-mapped by a 2 MiB page; linear 0x40000000 -> 0x30000 (write-
 * able), 0x40001000 not present, 0x40002000 -> the MMIO hole. */
static void long_mode(struct vcpu *v, u8 cpl)
{
	fg_w64(0x100000, 0x101000 | 7);
	fg_w64(0x101000, 0x104000 | 7);
	for (u64 i = 0; i < 8; i++)
		fg_w64(0x104000 + 8 * i, i << 21 | 0x83);
	fg_w64(0x101000 + 8, 0x102000 | 7);
	fg_w64(0x102000, 0x103000 | 7);
	fg_w64(0x103000, 0x30000 | 3 | (cpl == 3 ? 4 : 0));
	fg_w64(0x103000 + 16, FG_HOLE | 7);
	v->cr0 = CR0_PE | CR0_PG;
	v->cr3 = 0x100000;
	v->cr4 = CR4_PAE;
	v->efer = EFER_LME | EFER_LMA;
	v->cpl = cpl;
	v->seg[SEG_CS].attr = CODE64;
}

static void fault_midway(void)
{
	begin();
	struct vcpu v = flat(0x1F0, 2, true, true, 8);
	long_mode(&v, 0);
	v.gpr[RCX] = 2048;
	v.gpr[RDI] = 0x40000F00;
	handle_io(&v);
	CHECK_EQ(dev.calls, 1);
	CHECK_EQ(dev.last_count, 128); /* the words before the missing page */
	CHECK_EQ(v.gpr[RDI], 0x40001000);
	CHECK_EQ(v.gpr[RCX], 2048 - 128);
	CHECK_EQ(v.rip, 0x1000);
	CHECK(v.inject.valid);
	CHECK_EQ(v.inject.vector, 14);
	CHECK_EQ(v.inject.error, PF_W);
	CHECK(v.inject.has_cr2);
	CHECK_EQ(v.inject.cr2, 0x40001000);
	CHECK_EQ(((u8 *)fg(0x30F00))[0], 1);
	/* DF=1 downwards off the bottom of the mapped page: CR2 is the next element's address. */
	reset_dev();
	v = flat(0x1F0, 2, true, true, 8);
	long_mode(&v, 0);
	v.rflags |= 1u << 10;
	v.gpr[RCX] = 8;
	v.gpr[RDI] = 0x40000004;
	handle_io(&v);
	CHECK_EQ(dev.last_count, 3);
	CHECK_EQ(v.gpr[RDI], 0x3FFFFFFE);
	CHECK_EQ(v.gpr[RCX], 5);
	CHECK_EQ(v.inject.vector, 14);
	CHECK_EQ(v.inject.cr2, 0x3FFFFFFE);
	CHECK_EQ(v.inject.error, PF_W);
	/* From user mode onto a supervisor page: nothing moved, P|W|U. */
	reset_dev();
	v = flat(0x1F0, 2, true, true, 8);
	long_mode(&v, 0);
	v.cpl = 3;
	v.gpr[RCX] = 4;
	v.gpr[RDI] = 0x40000000;
	handle_io(&v);
	CHECK_EQ(dev.calls, 0);
	CHECK_EQ(v.inject.error, PF_P | PF_W | PF_U);
	CHECK_EQ(v.gpr[RCX], 4);
	end();
}

static void memory_not_ram(void)
{
	begin();
	struct vcpu v = flat(0x1F0, 2, true, true, 4);
	v.gpr[RCX] = 16;
	v.gpr[RDI] = FG_HOLE + 0x100;
	handle_io(&v);
	CHECK_EQ(dev.calls, 0);
	CHECK(v.inject.valid);
	CHECK_EQ(v.inject.vector, 13);
	CHECK_EQ(v.gpr[RCX], 16);
	CHECK_EQ(v.rip, 0x1000);
	/* The same through paging: linear 0x40002000 maps into the hole. */
	v = flat(0x1F0, 2, false, true, 8);
	long_mode(&v, 0);
	v.gpr[RCX] = 16;
	v.gpr[RSI] = 0x40002000;
	handle_io(&v);
	CHECK_EQ(dev.calls, 0);
	CHECK_EQ(v.inject.vector, 13);
	end();
}

static void outs_segment_override(void)
{
	begin();
	struct vcpu v = flat(0x1F0, 1, false, true, 4);
	const u8 code[3] = { 0xF3, 0x26, 0x6E }; /* rep es outsb */
	memcpy(fg(0x1000), code, 3);
	v.exit.next_rip = 0x1003;
	v.seg[SEG_ES].base = 0x50000;
	v.gpr[RCX] = 3;
	v.gpr[RSI] = 0x100;
	memcpy(fg(0x50100), "abc", 3);
	memcpy(fg(0x100), "xyz", 3);
	handle_io(&v);
	CHECK_EQ(dev.len, 3);
	CHECK(!memcmp(dev.data, "abc", 3));
	CHECK_EQ(v.rip, 0x1003);
	/* Code that is not OUTS (changed under us): nothing done, re-executed. */
	reset_dev();
	v = flat(0x1F0, 1, false, true, 4);
	((u8 *)fg(0x1001))[0] = 0x90;
	v.gpr[RCX] = 3;
	handle_io(&v);
	CHECK_EQ(dev.len, 0);
	CHECK_EQ(v.rip, 0x1000);
	CHECK(!v.inject.valid);
	end();
}

static void no_string_handler(void)
{
	begin();
	int h2 = io_hook_add(0x300, 4, dev_fn, NULL, NULL);
	struct vcpu v = flat(0x300, 4, true, true, 4);
	v.gpr[RCX] = 10;
	v.gpr[RDI] = 0x2000;
	handle_io(&v);
	CHECK_EQ(dev.fn_calls, 10);
	CHECK_EQ(dev.calls, 0);
	CHECK_EQ(v.rip, 0x1002);
	CHECK_EQ(((u8 *)fg(0x2000))[39], 40);
	io_hook_remove(h2);
	end();
}

static void address_wrap_16bit(void)
{
	begin();
	struct vcpu v = flat(0x1F0, 2, true, true, 2);
	v.cr0 = 0; /* real mode */
	for (int s = 0; s < SEG_NR; s++)
		v.seg[s] = (struct vseg){ 0, 0xFFFF, 0, 0x93 };
	v.seg[SEG_ES] = (struct vseg){ 0x20000, 0xFFFF, 0x2000, 0x93 };
	v.gpr[RDI] = 0x12340000 | 0xFFFC;
	v.gpr[RCX] = 0xABCD0000 | 4;
	handle_io(&v);
	CHECK_EQ(dev.last_count, 2); /* up to the wrap */
	CHECK_EQ(v.gpr[RDI], 0x12340000);
	CHECK_EQ(v.gpr[RCX], 0xABCD0002);
	CHECK_EQ(v.rip, 0x1000);
	CHECK(!v.inject.valid);
	handle_io(&v);
	CHECK_EQ(v.gpr[RDI], 0x12340004);
	CHECK_EQ(v.gpr[RCX], 0xABCD0000);
	CHECK_EQ(v.rip, 0x1002);
	CHECK_EQ(((u8 *)fg(0x2FFFC))[0], 1);
	CHECK_EQ(((u8 *)fg(0x20000))[0], 5);
	/* An element across the wrap is beyond the segment limit: #GP, without error code in real mode. */
	v.gpr[RDI] = 0xFFFF;
	v.gpr[RCX] = 1;
	v.rip = 0x1000;
	handle_io(&v);
	CHECK(v.inject.valid);
	CHECK_EQ(v.inject.vector, 13);
	CHECK(!v.inject.has_error);
	end();
}

static void segment_limit(void)
{
	begin();
	struct vcpu v = flat(0x1F0, 4, true, true, 4);
	v.seg[SEG_ES].limit = 0x2007;
	v.gpr[RDI] = 0x2000;
	v.gpr[RCX] = 4;
	handle_io(&v);
	CHECK_EQ(dev.last_count, 2);
	CHECK_EQ(v.gpr[RDI], 0x2008);
	CHECK_EQ(v.inject.vector, 13);
	CHECK(v.inject.has_error);
	/* A read-only data segment cannot be INS's destination. */
	reset_dev();
	v = flat(0x1F0, 4, true, true, 4);
	v.seg[SEG_ES].attr &= ~2u;
	v.gpr[RCX] = 1;
	handle_io(&v);
	CHECK_EQ(dev.calls, 0);
	CHECK_EQ(v.inject.vector, 13);
	end();
}

static void handler_stops_early(void)
{
	begin();
	dev.limit = 10;
	struct vcpu v = flat(0x1F0, 2, true, true, 4);
	v.gpr[RCX] = 256;
	v.gpr[RDI] = 0x3000;
	handle_io(&v);
	CHECK_EQ(v.gpr[RCX], 246);
	CHECK_EQ(v.gpr[RDI], 0x3014);
	CHECK_EQ(v.rip, 0x1000);
	CHECK(!v.inject.valid);
	CHECK_EQ(((u8 *)fg(0x3014))[0], 0);
	end();
}

static void hooks_and_bitmap(void)
{
	begin();
	CHECK(intercepted(0x1F0) && intercepted(0x1F7) && !intercepted(0x1F8));
	CHECK_EQ(io_hook_add(0x1F4, 2, dev_fn, NULL, NULL), -1);  /* overlap */
	CHECK_EQ(io_hook_add(0xFFFC, 8, dev_fn, NULL, NULL), -1); /* beyond 0xFFFF */
	int h2 = io_hook_add(0x170, 8, dev_fn, NULL, NULL);
	CHECK(h2 >= 0);
	CHECK(!io_hook_move(h2, 0x1F4)); /* onto another hook */
	CHECK(intercepted(0x170));
	CHECK(io_hook_move(h2, 0x174)); /* overlapping itself */
	CHECK(!intercepted(0x170) && !intercepted(0x173) && intercepted(0x174) && intercepted(0x17B));
	CHECK(io_hook_move(h2, 0xC000));
	CHECK(!intercepted(0x17B) && intercepted(0xC000) && intercepted(0xC007));
	io_hook_remove(h2);
	CHECK(!intercepted(0xC000));
	CHECK(!io_hook_move(h2, 0x170));
	/* Hooks registered before the backend are replayed when it registers. */
	io_set_intercept(NULL);
	memset(iopm, 0, sizeof(iopm));
	io_set_intercept(fake_intercept);
	CHECK(intercepted(0x1F0));
	end();
}

static void straddling_in(void)
{
	begin();
	int h2 = io_hook_add(0x300, 2, dev_fn, NULL, NULL);
	struct vcpu v = flat(0x2FE, 4, true, false, 4);
	v.exit.io.string = false;
	v.gpr[RAX] = 0xFFFFFFFF00000000ull;
	handle_io(&v);
	CHECK_EQ(dev.fn_calls, 1);
	CHECK_EQ(dev.port, 0x300);
	CHECK_EQ(fake_hw_port, 0x2FE); /* the unhooked half went to the hardware */
	CHECK_EQ(fake_hw_size, 2);
	CHECK_EQ(v.gpr[RAX] >> 16, 0x0201); /* the hook's bytes; bits 63:32 cleared */
	CHECK_EQ(v.rip, 0x1002);
	io_hook_remove(h2);
	end();
}

/* ---- MMIO emulation. ---- */

/* A device behind the trap pages: records each access, in order. */
static struct {
	unsigned calls, reads, writes;
	u64 gpa;
	unsigned size;
	bool write;
	u64 val;
	char seq[8];
} mm;

static bool mm_handler(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	(void)ctx, (void)v;
	if (mm.calls < sizeof(mm.seq) - 1)
		mm.seq[mm.calls] = write ? 'w' : 'r';
	mm.calls++;
	write ? mm.writes++ : mm.reads++;
	mm.gpa = gpa, mm.size = size, mm.write = write;
	if (write)
		mm.val = *val;
	else
		*val = 0x1122334455667788ull;
	return true;
}

static struct vcpu npf(const u8 *code, unsigned n, u64 gpa, bool write)
{
	struct vcpu v = flat(0, 1, false, false, 4);
	memcpy(fg(0x1000), code, n);
	v.exit.reason = EXIT_NPF;
	v.exit.npf.gpa = gpa;
	v.exit.npf.access = write ? NPF_WRITE : NPF_READ;
	return v;
}

/* Trapped: 0x700000-0x701FFF every access; 0x702000 writes only (its reads go to "the device":
 * the fake memory there). */
static void mmio_begin(void)
{
	fg_begin();
	static bool added;
	if (!added) {
		CHECK(mmio_trap_add(0x700000, 0x2000, PT_NONE, mm_handler, NULL));
		CHECK(mmio_trap_add(0x702000, 0x1000, PT_RO, mm_handler, NULL));
	}
	added = true;
	memset(&mm, 0, sizeof(mm));
}

static bool gp(const struct vcpu *v)
{
	return v->inject.valid && v->inject.vector == 13;
}

static void mmio_emulation(void)
{
	mmio_begin();
	struct vcpu v = npf((const u8 *)"\x8B\x43\x10", 3, 0x700010, false); /* mov eax,[ebx+0x10] */
	v.gpr[RBX] = 0x700000;
	v.gpr[RAX] = 0xFFFFFFFFFFFFFFFFull;
	CHECK(mmio_handle_npf(&v));
	CHECK_EQ(mm.calls, 1);
	CHECK_EQ(mm.gpa, 0x700010);
	CHECK_EQ(mm.size, 4);
	CHECK_EQ(v.gpr[RAX], 0x55667788);
	CHECK_EQ(v.rip, 0x1003);

	v = npf((const u8 *)"\x88\x3B", 2, 0x701FFF, true); /* mov [ebx],bh */
	v.gpr[RBX] = 0x701FFF;
	CHECK(mmio_handle_npf(&v));
	CHECK(mm.write);
	CHECK_EQ(mm.size, 1);
	CHECK_EQ(mm.val, 0x1F);
	CHECK_EQ(v.rip, 0x1002);

	v = npf((const u8 *)"\x66\x0F\xB6\x01", 4, 0x700004, false); /* movzx ax,byte [ecx] */
	v.gpr[RCX] = 0x700004;
	v.gpr[RAX] = 0xAAAABBBB;
	CHECK(mmio_handle_npf(&v));
	CHECK_EQ(v.gpr[RAX], 0xAAAA0088);

	/* 64-bit code: RIP-relative store of an immediate. */
	v = npf((const u8 *)"\xC7\x05\xF6\xFF\x6F\x00\x78\x56\x34\x12", 10, 0x701000, true);
	long_mode(&v, 0);
	CHECK(mmio_handle_npf(&v));
	CHECK_EQ(mm.gpa, 0x701000);
	CHECK_EQ(mm.val, 0x12345678);
	CHECK_EQ(v.rip, 0x100A);

	/* 64-bit code: the APIC ICR store of a moffs form, mov [0x700300],eax. */
	v = npf((const u8 *)"\xA3\x00\x03\x70\x00\x00\x00\x00\x00", 9, 0x700300, true);
	long_mode(&v, 0);
	v.gpr[RAX] = 0xFFFFFFFF000C4500ull;
	CHECK(mmio_handle_npf(&v));
	CHECK(!v.inject.valid);
	CHECK_EQ(mm.gpa, 0x700300);
	CHECK_EQ(mm.size, 4);
	CHECK_EQ(mm.val, 0x000C4500);
	CHECK_EQ(v.rip, 0x1009);

	/* Real mode: mov [bx+si+2],al in a segment at 0x700000 (as big real mode would have it). */
	v = npf((const u8 *)"\x88\x40\x02", 3, 0x700032, true);
	v.cr0 = 0;
	v.seg[SEG_DS] = (struct vseg){ 0x700000, 0xFFFF, 0x7000, FLAT_DATA };
	v.gpr[RBX] = 0x10, v.gpr[RSI] = 0x20, v.gpr[RAX] = 0x5A;
	CHECK(mmio_handle_npf(&v));
	CHECK_EQ(mm.gpa, 0x700032);
	CHECK_EQ(mm.val, 0x5A);
	CHECK_EQ(v.rip, 0x1003);

	/* Not a trap page: not ours. */
	v = npf((const u8 *)"\x8B\x03", 2, 0x900000, false);
	CHECK(!mmio_handle_npf(&v));
	fg_end();
}

static bool other_handler(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	(void)v, (void)ctx, (void)gpa, (void)size, (void)write, (void)val;
	return false;
}

/* A page trapped while the guest runs (a moved local APIC): found by the next fault; a page
 * another handler traps is refused. */
static void trap_page_at_run_time(void)
{
	fg_begin();
	static bool added;
	if (!added)
		CHECK(mmio_trap_add(0x780000, 0x2000, PT_NONE, mm_handler, NULL));
	added = true;
	CHECK(mmio_trap_page(0x781000, PT_RO, mm_handler, NULL)); /* already its page */
	CHECK(!mmio_trap_page(0x781000, PT_RO, other_handler, NULL));
	CHECK(!mmio_trap_page(0x7F0800, PT_RO, mm_handler, NULL)); /* not page-aligned */
	CHECK(mmio_trap_page(0x7F0000, PT_RO, mm_handler, NULL));
	CHECK(mmio_trap_page(0x7F0000, PT_NONE, mm_handler, NULL));
	CHECK(!mmio_trap_page(0x7F0000, PT_RO, other_handler, NULL));
	memset(&mm, 0, sizeof(mm));
	struct vcpu v = npf((const u8 *)"\x89\x43\x20", 3, 0x7F0020, true); /* mov [ebx+0x20],eax */
	v.gpr[RBX] = 0x7F0000;
	v.gpr[RAX] = 0xCAFE;
	CHECK(mmio_handle_npf(&v));
	CHECK_EQ(mm.calls, 1);
	CHECK_EQ(mm.gpa, 0x7F0020);
	CHECK_EQ(mm.val, 0xCAFE);
	fg_end();
}

static void mmio_read_modify_write(void)
{
	mmio_begin();
	/* lock or dword [ebx],0x10: one read, then one write, of the handler; flags set. */
	struct vcpu v = npf((const u8 *)"\xF0\x83\x0B\x10", 4, 0x700040, false);
	v.gpr[RBX] = 0x700040;
	v.rflags = 2 | 1 | 0x40 | 0x800; /* CF ZF OF */
	CHECK(mmio_handle_npf(&v));
	CHECK(!v.inject.valid);
	CHECK(strcmp(mm.seq, "rw") == 0);
	CHECK_EQ(mm.gpa, 0x700040);
	CHECK_EQ(mm.val, 0x55667798);
	CHECK_EQ(v.rflags, 2); /* 0x55667798: CF OF ZF SF clear, PF odd */
	CHECK_EQ(v.rip, 0x1004);

	/* The same with the write fault a processor may report for it. */
	memset(&mm, 0, sizeof(mm));
	v = npf((const u8 *)"\xF0\x83\x0B\x10", 4, 0x700040, true);
	v.gpr[RBX] = 0x700040;
	CHECK(mmio_handle_npf(&v));
	CHECK(strcmp(mm.seq, "rw") == 0);

	/* A write-only trap: the read half goes to the device itself, only the write to the handler. */
	memset(&mm, 0, sizeof(mm));
	fg_w32(0x7020F0, 0x0000010F);
	v = npf((const u8 *)"\x81\x0B\x00\x01\x00\x00", 6, 0x7020F0, true); /* or dword [ebx],0x100 */
	v.gpr[RBX] = 0x7020F0;
	CHECK(mmio_handle_npf(&v));
	CHECK(!v.inject.valid);
	CHECK(strcmp(mm.seq, "w") == 0);
	CHECK_EQ(mm.val, 0x10F);
	CHECK_EQ(v.rip, 0x1006);

	/* xchg [ebx],ecx; bts dword [ebx],ecx reaching 4 bytes further; xadd */
	memset(&mm, 0, sizeof(mm));
	v = npf((const u8 *)"\x87\x0B", 2, 0x700000, false);
	v.gpr[RBX] = 0x700000, v.gpr[RCX] = 0xABCD;
	CHECK(mmio_handle_npf(&v));
	CHECK(strcmp(mm.seq, "rw") == 0);
	CHECK_EQ(mm.val, 0xABCD);
	CHECK_EQ(v.gpr[RCX], 0x55667788);
	memset(&mm, 0, sizeof(mm));
	v = npf((const u8 *)"\x0F\xAB\x0B", 3, 0x700104, false);
	v.gpr[RBX] = 0x700100, v.gpr[RCX] = 32 + 3;
	CHECK(mmio_handle_npf(&v));
	CHECK_EQ(mm.gpa, 0x700104);
	CHECK_EQ(mm.val, 0x55667788 | 8);
	CHECK_EQ(v.rflags & 1, 1); /* bit 3 of 0x...88 was set */
	fg_end();
}

static void mmio_strings(void)
{
	mmio_begin();
	/* movsd from RAM to the trap page: the write faulted. */
	struct vcpu v = npf((const u8 *)"\xA5", 1, 0x700008, true);
	fg_w32(0x5000, 0xAABBCCDD);
	v.gpr[RSI] = 0x5000, v.gpr[RDI] = 0x700008;
	CHECK(mmio_handle_npf(&v));
	CHECK(!v.inject.valid);
	CHECK(strcmp(mm.seq, "w") == 0);
	CHECK_EQ(mm.gpa, 0x700008);
	CHECK_EQ(mm.val, 0xAABBCCDD);
	CHECK_EQ(v.gpr[RSI], 0x5004);
	CHECK_EQ(v.gpr[RDI], 0x70000C);
	CHECK_EQ(v.rip, 0x1001);

	/* rep movsw from the trap page to RAM, DF=1: one element per exit, RIP stays while CX is not 0. */
	memset(&mm, 0, sizeof(mm));
	v = npf((const u8 *)"\xF3\x66\xA5", 3, 0x700010, false);
	v.rflags |= 1u << 10;
	v.gpr[RSI] = 0x700010, v.gpr[RDI] = 0x6002, v.gpr[RCX] = 2;
	CHECK(mmio_handle_npf(&v));
	CHECK(strcmp(mm.seq, "r") == 0);
	CHECK_EQ(fg_r32(0x6000), 0x77880000);
	CHECK_EQ(v.gpr[RSI], 0x70000E);
	CHECK_EQ(v.gpr[RDI], 0x6000);
	CHECK_EQ(v.gpr[RCX], 1);
	CHECK_EQ(v.rip, 0x1000);
	v.exit.npf.gpa = 0x70000E;
	CHECK(mmio_handle_npf(&v));
	CHECK_EQ(v.gpr[RCX], 0);
	CHECK_EQ(v.rip, 0x1003);

	/* rep stosd to the trap page. */
	memset(&mm, 0, sizeof(mm));
	v = npf((const u8 *)"\xF3\xAB", 2, 0x700020, true);
	v.gpr[RDI] = 0x700020, v.gpr[RCX] = 3, v.gpr[RAX] = 0x12345678;
	CHECK(mmio_handle_npf(&v));
	CHECK_EQ(mm.val, 0x12345678);
	CHECK_EQ(v.gpr[RDI], 0x700024);
	CHECK_EQ(v.gpr[RCX], 2);
	CHECK_EQ(v.rip, 0x1000);

	/* A page fault on the RAM side of MOVS (long mode): #PF, nothing written, no register moved. */
	memset(&mm, 0, sizeof(mm));
	v = npf((const u8 *)"\x48\xA5", 2, 0x700000, true);
	long_mode(&v, 0);
	v.gpr[RSI] = 0x40001000, v.gpr[RDI] = 0x700000;
	CHECK(mmio_handle_npf(&v));
	CHECK(v.inject.valid && v.inject.vector == 14 && v.inject.cr2 == 0x40001000);
	CHECK_EQ(mm.calls, 0);
	CHECK_EQ(v.gpr[RSI], 0x40001000);
	CHECK_EQ(v.rip, 0x1000);

	/* ES beyond its limit for the RAM side: #GP. */
	memset(&mm, 0, sizeof(mm));
	v = npf((const u8 *)"\xA4", 1, 0x700000, false);
	v.seg[SEG_ES].limit = 0xFFF;
	v.gpr[RSI] = 0x700000, v.gpr[RDI] = 0x6000;
	CHECK(mmio_handle_npf(&v));
	CHECK(gp(&v));
	CHECK_EQ(v.gpr[RSI], 0x700000);
	CHECK_EQ(mm.writes, 0);
	fg_end();
}

/* Refused with #GP: no register moves, no handler write, RAM untouched. */
static void mmio_refusals(void)
{
	static const struct {
		const char *what, *code;
		u8 n;
		u64 gpa;
		bool write;
		u64 rbx, rsi, rdi, rcx;
	} cases[] = {
		{ "not emulated: mul dword [ebx]", "\xF7\x23", 2, 0x700000, false, 0x700000, 0, 0, 0 },
		{ "the operand elsewhere than the fault", "\x8B\x03", 2, 0x700000, false, 0x500000, 0, 0, 0 },
		{ "a read for a write fault", "\x8B\x03", 2, 0x700000, true, 0x700000, 0, 0, 0 },
		{ "the operand on another trap page", "\x8B\x03", 2, 0x700000, false, 0x701000, 0, 0, 0 },
		{ "a dword from RAM across into the trap page", "\x89\x03", 2, 0x700000, true, 0x6FFFFE, 0, 0, 0 },
		{ "a write to RAM in place of the trapped access", "\xA5", 1, 0x700000, false, 0, 0x5000, 0x6000, 0 },
		{ "REP with RCX = 0 touches nothing: it cannot have faulted", "\xF3\xA5", 2, 0x700000, true, 0, 0,
		    0x700000, 0 },
		{ "LOCK on a load", "\xF0\x8B\x03", 3, 0x700000, false, 0x700000, 0, 0, 0 },
		{ "the other side of MOVS neither RAM nor trapped", "\xA5", 1, 0x700000, false, 0, 0x700000, FG_HOLE,
		    0 },
	};
	mmio_begin();
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vcpu v = npf((const u8 *)cases[i].code, cases[i].n, cases[i].gpa, cases[i].write);
		v.gpr[RBX] = cases[i].rbx, v.gpr[RSI] = cases[i].rsi, v.gpr[RDI] = cases[i].rdi,
		v.gpr[RCX] = cases[i].rcx;
		fg_w32(0x6000, 0);
		struct vcpu old = v;
		int failures = test_failures;
		CHECK(mmio_handle_npf(&v));
		CHECK(gp(&v));
		CHECK(memcmp(v.gpr, old.gpr, sizeof(v.gpr)) == 0);
		CHECK_EQ(v.rip, 0x1000);
		CHECK_EQ(mm.writes, 0);
		CHECK_EQ(fg_r32(0x6000), 0);
		if (test_failures != failures)
			fprintf(stderr, "mmio: ... in \"%s\"\n", cases[i].what);
	}
	fg_end();
}


/* ---- Trap regions at run time. ---- */

static struct {
	unsigned calls;
	void *ctx;
	u64 gpa;
} rg;

static bool region_handler(struct vcpu *v, void *ctx, u64 gpa, unsigned size, bool write, u64 *val)
{
	(void)v, (void)size;
	rg.calls++, rg.ctx = ctx, rg.gpa = gpa;
	if (!write)
		*val = 0xA5;
	return true;
}

/* Another CPU's read of gpa (mov eax,[ebx]): whether mmio.c took the fault, and whether the
 * instruction completed (else it runs again). */
static bool fault_at(u64 gpa, bool *done)
{
	struct vcpu v = npf((const u8 *)"\x8B\x03", 2, gpa, false);
	v.gpr[RBX] = gpa;
	bool mine = mmio_handle_npf(&v);
	CHECK(!v.inject.valid);
	*done = v.rip == 0x1002;
	return mine;
}

static int ctx_a, ctx_b;
static u64 fault_during_flush_gpa;
static unsigned fault_during_flush_calls;
static bool fault_during_flush_done;

static void fault_during_flush(void)
{
	unsigned before = rg.calls;
	bool done;
	CHECK(fault_at(fault_during_flush_gpa, &done));
	fault_during_flush_done = done;
	fault_during_flush_calls = rg.calls - before;
}

static void regions_add_move_remove(void)
{
	fg_begin();
	memset(&rg, 0, sizeof(rg));
	unsigned flushes = npt_flushes;
	int h = mmio_region_add(0x500000, 0x2000, PT_NONE, region_handler, &ctx_a);
	CHECK(h >= 0);
	CHECK_EQ(npt_flushes, flushes + 1); /* every CPU flushed before it returned */
	CHECK_EQ(npt_of(0x500000), PT_NONE);
	CHECK_EQ(npt_of(0x501000), PT_NONE);
	bool done;
	CHECK(fault_at(0x501008, &done) && done);
	CHECK_EQ(rg.calls, 1);
	CHECK(rg.ctx == &ctx_a);
	CHECK_EQ(rg.gpa, 0x501008);

	/* Refused: overlaps (another region, a boot-time trap), alignment, length, access, pages
	 * that cannot be trapped (the pages tried first are mapped again). */
	flushes = npt_flushes;
	CHECK_EQ(mmio_region_add(0x501000, 0x1000, PT_RO, region_handler, &ctx_b), -1);
	CHECK_EQ(mmio_region_add(0x4FF000, 0x2000, PT_RO, region_handler, &ctx_b), -1);
	CHECK_EQ(mmio_region_add(0x700000, 0x1000, PT_NONE, region_handler, &ctx_b), -1);
	CHECK_EQ(mmio_region_add(0x510800, 0x1000, PT_NONE, region_handler, &ctx_b), -1);
	CHECK_EQ(mmio_region_add(0x510000, 0x800, PT_NONE, region_handler, &ctx_b), -1);
	CHECK_EQ(mmio_region_add(0x510000, 0, PT_NONE, region_handler, &ctx_b), -1);
	CHECK_EQ(mmio_region_add(0x510000, 0x1000, PT_RW, region_handler, &ctx_b), -1);
	CHECK_EQ(mmio_region_add(0xFFFFFFFFFFFFF000ull, 0x2000, PT_NONE, region_handler, &ctx_b), -1);
	CHECK_EQ(mmio_region_add(FAKE_NPT_HIDDEN - 0x1000, 0x2000, PT_NONE, region_handler, &ctx_b), -1);
	CHECK_EQ(npt_of(FAKE_NPT_HIDDEN - 0x1000), PT_RW);
	CHECK_EQ(npt_flushes, flushes); /* nothing changed */

	/* A second region on the next pages; a move onto it, onto the hidden pages: refused. */
	int h2 = mmio_region_add(0x502000, 0x1000, PT_RO, region_handler, &ctx_b);
	CHECK(h2 >= 0 && h2 != h);
	CHECK(!mmio_region_move(h, 0x501000));
	CHECK(!mmio_region_move(h, FAKE_NPT_HIDDEN - 0x1000));
	CHECK(!mmio_region_move(h, 0x520800));
	CHECK_EQ(npt_of(FAKE_NPT_HIDDEN - 0x1000), PT_RW);
	CHECK_EQ(npt_of(0x500000), PT_NONE);
	CHECK_EQ(npt_of(0x502000), PT_RO);
	CHECK(mmio_region_move(h, 0x500000)); /* where it is */

	/* Moved onto pages that overlap its own: the old page is mapped again, a fault taken there
	 * before the change runs the instruction again (the hardware then answers). While the change
	 * is flushed, a fault on the page being released runs again too, one on the new pages finds
	 * the region. */
	mmio_region_remove(h2);
	CHECK_EQ(npt_of(0x502000), PT_RW);
	flushes = npt_flushes;
	during_flush = fault_during_flush;
	fault_during_flush_gpa = 0x500010;
	CHECK(mmio_region_move(h, 0x501000));
	CHECK(!fault_during_flush_done);
	CHECK_EQ(fault_during_flush_calls, 0);
	fault_during_flush_gpa = 0x503000;
	CHECK(mmio_region_move(h, 0x502000));
	CHECK(fault_during_flush_done);
	CHECK_EQ(fault_during_flush_calls, 1);
	CHECK_EQ(rg.gpa, 0x503000);
	during_flush = NULL;
	CHECK_EQ(npt_flushes, flushes + 2);
	CHECK_EQ(npt_of(0x500000), PT_RW);
	CHECK_EQ(npt_of(0x501000), PT_RW);
	CHECK_EQ(npt_of(0x502000), PT_NONE);
	CHECK_EQ(npt_of(0x503000), PT_NONE);
	unsigned calls = rg.calls;
	struct vcpu sv = npf((const u8 *)"\x8B\x03", 2, 0x500010, false);
	sv.gpr[RBX] = 0x500010;
	CHECK(mmio_handle_npf(&sv)); /* stale: run again, after this CPU's nested TLB is flushed */
	CHECK(!sv.inject.valid);
	CHECK_EQ(sv.rip, 0x1000);
	CHECK(sv.flush_stage2);
	CHECK(fault_at(0x503FF8, &done) && done);
	CHECK_EQ(rg.calls, calls + 1);
	CHECK(!fault_at(0x908000, &done)); /* nothing maps it: not mmio.c's */

	/* Removed: the pages map the hardware again; a racing fault runs again; the handle is free. */
	mmio_region_remove(h);
	CHECK_EQ(npt_of(0x502000), PT_RW);
	CHECK_EQ(npt_of(0x503000), PT_RW);
	calls = rg.calls;
	CHECK(fault_at(0x502000, &done) && !done);
	CHECK_EQ(rg.calls, calls);
	CHECK(!mmio_region_move(h, 0x510000));
	mmio_region_remove(h);  /* twice: nothing */
	mmio_region_remove(-1); /* never a handle */
	CHECK(!mmio_region_move(MMIO_TRAPS_MAX, 0x510000));

	/* The table is shared with boot-time traps: fill it, then free what was taken. */
	int hs[MMIO_TRAPS_MAX];
	unsigned n = 0;
	while (n < MMIO_TRAPS_MAX &&
	       (hs[n] = mmio_region_add(0x600000 + 0x1000 * (u64)n, 0x1000, PT_NONE, region_handler, &ctx_a)) >= 0)
		n++;
	CHECK(n > 0 && n < MMIO_TRAPS_MAX);
	CHECK(!mmio_trap_add(0x680000, 0x1000, PT_NONE, region_handler, NULL));
	for (unsigned i = 0; i < n; i++)
		mmio_region_remove(hs[i]);
	CHECK_EQ(npt_of(0x600000), PT_RW);
	CHECK(mmio_region_add(0x600000, 0x1000, PT_NONE, region_handler, &ctx_a) >= 0);
	fg_end();
}

TESTS(io_tests) = {
	{ "io: rep insw is one block across a page boundary", ins_one_block_across_pages },
	{ "io: string I/O is bounded per exit and resumed", bounded_per_exit },
	{ "io: string I/O under single-step or an I/O breakpoint: one element per exit", one_element_when_trapping },
	{ "io: outs with DF=1, bytes and words across a page", outs_backwards },
	{ "io: a page fault mid-way: elements before it, #PF with CR2", fault_midway },
	{ "io: guest memory that is not RAM gets #GP, untouched", memory_not_ram },
	{ "io: outs honours a segment override; changed code is re-executed", outs_segment_override },
	{ "io: a hook without a string handler is called per element in one exit", no_string_handler },
	{ "io: 16-bit address wrap, real mode", address_wrap_16bit },
	{ "io: segment limit and type checks", segment_limit },
	{ "io: a string handler that stops early", handler_stops_early },
	{ "io: hooks add/move/remove keep the intercept bitmap", hooks_and_bitmap },
	{ "io: an IN straddling a hook is split", straddling_in },
	{ "mmio: loads, stores, MOVZX, RIP-relative, moffs, real mode", mmio_emulation },
	{ "mmio: read-modify-write is one read and one write; write-only traps read the device",
	    mmio_read_modify_write },
	{ "mmio: MOVS and STOS with RAM, REP one element per exit, faults on the RAM side", mmio_strings },
	{ "mmio: other forms, operands elsewhere, page crossings, LOCK misuse are #GP", mmio_refusals },
	{ "mmio: a page trapped at run time", trap_page_at_run_time },
	{ "mmio: regions added, moved, removed while the guest runs; refusals; stale faults", regions_add_move_remove },
	{ NULL, NULL },
};
