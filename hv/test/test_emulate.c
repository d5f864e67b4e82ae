/* The MMIO instruction emulator on a model memory: a table of byte sequences and what they do to
 * registers, memory and flags in 16-, 32- and 64-bit code; string semantics; faults; and the flags
 * of every arithmetic form compared with what the host processor computes. */
#include "test.h"
#include "vmm/emulate.h"
#include "vmm/vcpu.h"
#include <string.h>

/* ---- A model memory: two 4 KiB windows of linear addresses (segment base + offset). ---- */

#define M 0xFEE00000ull /* "the MMIO page" */
#define RAM 0x10000ull  /* "guest RAM" */

struct model {
	u8 win[2][4096];
	u64 seg_base[SEG_NR];
	char log[8]; /* r/w: an access; R/W: of a read-modify-write */
	unsigned n;
	int fail_at; /* the access that faults, or -1 */
};

static u8 *locate(struct model *m, u64 la, unsigned size)
{
	if (la >= M && la + size <= M + 4096)
		return &m->win[0][la - M];
	if (la >= RAM && la + size <= RAM + 4096)
		return &m->win[1][la - RAM];
	return NULL;
}

static enum emu_status model_access(void *ctx, const struct emu_access *a, u64 *val)
{
	struct model *m = ctx;
	if (m->n < sizeof(m->log) - 1)
		m->log[m->n] = a->rmw ? (a->write ? 'W' : 'R') : (a->write ? 'w' : 'r');
	if ((int)m->n++ == m->fail_at)
		return EMU_FAULT;
	u8 *p = locate(m, m->seg_base[a->seg] + a->off, a->size);
	if (!p || a->seg >= SEG_NR)
		return EMU_REFUSED;
	if (a->write) {
		memcpy(p, val, a->size);
	} else {
		*val = 0xA5A5A5A5A5A5A5A5ull; /* bytes above size: the emulator must ignore them */
		memcpy(val, p, a->size);
	}
	return EMU_OK;
}

static void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	for (unsigned i = 0; i < 4096; i++)
		m->win[0][i] = (u8)(i * 7 + 1), m->win[1][i] = (u8)(i * 13 + 3);
	m->fail_at = -1;
}

static u64 default_reg(unsigned i)
{
	return 0x5A5A5A5A5A5A5A00ull + i;
}

/* ---- The table. ---- */

struct regval {
	u8 r1; /* register + 1; 0 ends the list */
	u64 v;
};
#define R(r, v)              \
	{                    \
		(r) + 1, (v) \
	}

struct ecase {
	const char *what;
	enum cpu_mode mode;
	const char *code;
	u8 n;
	struct regval in[4];
	u64 flags, mem; /* RFLAGS before; the 8 bytes at `at` before */
	/* expected: only these registers change; the 8 bytes at `at`; RFLAGS; accesses */
	struct regval out[4];
	u64 flags_out, mem_out;
	const char *log;
	u64 at;     /* linear address of the 8 bytes (0: M) */
	bool stays; /* RIP stays on the instruction (REP not done) */
};

#define F2 0x2ull
#define CF RFLAGS_CF
#define PF RFLAGS_PF
#define AF RFLAGS_AF
#define ZF RFLAGS_ZF
#define SF RFLAGS_SF
#define OF RFLAGS_OF
#define DF RFLAGS_DF
#define ALL (F2 | RFLAGS_ARITH)
#define C(s) s, sizeof(s) - 1

/* In real and 32-bit code the model's DS and ES are at RAM, SS at RAM + 0x800, FS at M. */
static const struct ecase cases[] = {
	/* MOV, including moffs */
	{ "mov [moffs64],eax: the APIC ICR store", MODE_64, C("\xA3\x00\x03\xE0\xFE\x00\x00\x00\x00"),
	    { R(RAX, 0xFFFFFFFF000C4500) }, F2, 0x1111111122222222, { { 0 } }, F2, 0x11111111000C4500, "w", M + 0x300,
	    0 },
	{ "mov eax,[rbx] clears bits 63:32", MODE_64, C("\x8B\x03"), { R(RBX, M) }, F2, 0x8877665544332211,
	    { R(RAX, 0x44332211) }, F2, 0x8877665544332211, "r", 0, 0 },
	{ "mov ax,[rbx] keeps the rest", MODE_64, C("\x66\x8B\x03"), { R(RBX, M) }, F2, 0x8877665544332211,
	    { R(RAX, 0x5A5A5A5A5A5A2211) }, F2, 0x8877665544332211, "r", 0, 0 },
	{ "mov ah,[rbx]", MODE_64, C("\x8A\x23"), { R(RBX, M) }, F2, 0x99, { R(RAX, 0x5A5A5A5A5A5A9900) }, F2, 0x99,
	    "r", 0, 0 },
	{ "mov sil,[rbx] (REX: not DH)", MODE_64, C("\x40\x8A\x33"), { R(RBX, M) }, F2, 0x99,
	    { R(RSI, 0x5A5A5A5A5A5A5A99) }, F2, 0x99, "r", 0, 0 },
	{ "mov r9,[rbx]", MODE_64, C("\x4C\x8B\x0B"), { R(RBX, M) }, F2, 0x8877665544332211,
	    { R(R9, 0x8877665544332211) }, F2, 0x8877665544332211, "r", 0, 0 },
	{ "mov [rbx],ch", MODE_64, C("\x88\x2B"), { R(RBX, M), R(RCX, 0x1234) }, F2, 0x8877665544332211, { { 0 } }, F2,
	    0x8877665544332212, "w", 0, 0 },
	{ "mov [r11+r12*4+8],r8w (REX.RXB)", MODE_64, C("\x66\x47\x89\x44\xA3\x08"),
	    { R(R11, M), R(R12, 2), R(R8, 0xABCD) }, F2, 0, { { 0 } }, F2, 0xABCD, "w", M + 16, 0 },
	{ "mov qword [rbx],-2", MODE_64, C("\x48\xC7\x03\xFE\xFF\xFF\xFF"), { R(RBX, M) }, F2, 0, { { 0 } }, F2,
	    0xFFFFFFFFFFFFFFFE, "w", 0, 0 },
	{ "mov byte [rbx],0x80", MODE_64, C("\xC6\x03\x80"), { R(RBX, M) }, F2, 0x1111, { { 0 } }, F2, 0x1180, "w", 0,
	    0 },
	{ "mov [rip+0xFEFA],eax", MODE_64, C("\x89\x05\xFA\xFE\x00\x00"), { R(RAX, 0xCAFEF00D) }, F2, 0, { { 0 } }, F2,
	    0xCAFEF00D, "w", RAM, 0 },
	{ "mov al,[moffs32] (67)", MODE_64, C("\x67\xA0\x00\x00\xE0\xFE"), { { 0 } }, F2, 0x77,
	    { R(RAX, 0x5A5A5A5A5A5A5A77) }, F2, 0x77, "r", 0, 0 },
	{ "mov rax,[moffs64]", MODE_64, C("\x48\xA1\x00\x00\xE0\xFE\x00\x00\x00\x00"), { { 0 } }, F2,
	    0x8877665544332211, { R(RAX, 0x8877665544332211) }, F2, 0x8877665544332211, "r", 0, 0 },
	{ "movzx ecx,byte [rbx]", MODE_64, C("\x0F\xB6\x0B"), { R(RBX, M) }, F2, 0xF0, { R(RCX, 0xF0) }, F2, 0xF0, "r",
	    0, 0 },
	{ "movzx rcx,word [rbx]", MODE_64, C("\x48\x0F\xB7\x0B"), { R(RBX, M) }, F2, 0x8001F0F0, { R(RCX, 0xF0F0) }, F2,
	    0x8001F0F0, "r", 0, 0 },
	{ "movsx ecx,byte [rbx]", MODE_64, C("\x0F\xBE\x0B"), { R(RBX, M) }, F2, 0xF0, { R(RCX, 0xFFFFFFF0) }, F2, 0xF0,
	    "r", 0, 0 },
	{ "movsx cx,byte [rbx]", MODE_64, C("\x66\x0F\xBE\x0B"), { R(RBX, M) }, F2, 0x80,
	    { R(RCX, 0x5A5A5A5A5A5AFF80) }, F2, 0x80, "r", 0, 0 },
	{ "movsx rcx,word [rbx]", MODE_64, C("\x48\x0F\xBF\x0B"), { R(RBX, M) }, F2, 0x8001,
	    { R(RCX, 0xFFFFFFFFFFFF8001) }, F2, 0x8001, "r", 0, 0 },
	{ "movsxd rcx,[rbx]", MODE_64, C("\x48\x63\x0B"), { R(RBX, M) }, F2, 0x80000000, { R(RCX, 0xFFFFFFFF80000000) },
	    F2, 0x80000000, "r", 0, 0 },
	{ "movsxd ecx,[rbx] (no REX.W)", MODE_64, C("\x63\x0B"), { R(RBX, M) }, F2, 0x80000000, { R(RCX, 0x80000000) },
	    F2, 0x80000000, "r", 0, 0 },
	{ "movnti [rbx],rcx", MODE_64, C("\x48\x0F\xC3\x0B"), { R(RBX, M), R(RCX, 0x0102030405060708) }, F2, 0,
	    { { 0 } }, F2, 0x0102030405060708, "w", 0, 0 },
	/* ALU: flags on boundary values */
	{ "add [rbx],al: 0xFF+1", MODE_64, C("\x00\x03"), { R(RBX, M), R(RAX, 1) }, F2, 0xFF, { { 0 } },
	    F2 | CF | PF | AF | ZF, 0, "RW", 0, 0 },
	{ "add [rbx],eax: 0x7FFFFFFF+1", MODE_64, C("\x01\x03"), { R(RBX, M), R(RAX, 1) }, F2, 0x7FFFFFFF, { { 0 } },
	    F2 | PF | AF | SF | OF, 0x80000000, "RW", 0, 0 },
	{ "adc [rbx],eax: 0xFFFFFFFF+0+CF", MODE_64, C("\x11\x03"), { R(RBX, M), R(RAX, 0) }, F2 | CF, 0xFFFFFFFF,
	    { { 0 } }, F2 | CF | PF | AF | ZF, 0, "RW", 0, 0 },
	{ "sub eax,[rbx]: 0-1", MODE_64, C("\x2B\x03"), { R(RBX, M), R(RAX, 0) }, F2, 1, { R(RAX, 0xFFFFFFFF) },
	    F2 | CF | PF | AF | SF, 1, "r", 0, 0 },
	{ "sbb [rbx],al: 0x80-0-CF", MODE_64, C("\x18\x03"), { R(RBX, M), R(RAX, 0) }, F2 | CF, 0x80, { { 0 } },
	    F2 | AF | OF, 0x7F, "RW", 0, 0 },
	{ "sbb bh,[rsi]: 0x00-0x01-CF", MODE_64, C("\x1A\x3E"), { R(RSI, M), R(RBX, 0x00FF) }, F2 | CF, 0x01,
	    { R(RBX, 0xFEFF) }, F2 | CF | AF | SF, 0x01, "r", 0, 0 },
	{ "cmp [rbx],al: equal", MODE_64, C("\x38\x03"), { R(RBX, M), R(RAX, 5) }, F2 | CF, 5, { { 0 } }, F2 | PF | ZF,
	    5, "r", 0, 0 },
	{ "cmp byte [rbx],0x80: 0x7F-0x80", MODE_64, C("\x80\x3B\x80"), { R(RBX, M) }, F2, 0x7F, { { 0 } },
	    F2 | CF | PF | SF | OF, 0x7F, "r", 0, 0 },
	{ "or word [rbx],0x8000 clears CF OF AF", MODE_64, C("\x66\x81\x0B\x00\x80"), { R(RBX, M) },
	    F2 | CF | OF | AF | ZF, 0x1, { { 0 } }, F2 | SF, 0x8001, "RW", 0, 0 },
	{ "lock and dword [rbx],0 (83)", MODE_64, C("\xF0\x83\x23\x00"), { R(RBX, M) }, F2, 0xFFFFFFFFFFFFFFFF,
	    { { 0 } }, F2 | PF | ZF, 0xFFFFFFFF00000000, "RW", 0, 0 },
	{ "xor qword [rbx],-1 (83 REX.W)", MODE_64, C("\x48\x83\x33\xFF"), { R(RBX, M) }, F2, 0x00FF00FF00FF00FF,
	    { { 0 } }, F2 | PF | SF, 0xFF00FF00FF00FF00, "RW", 0, 0 },
	{ "sub dword [rbx],0x80000000 (81)", MODE_64, C("\x81\x2B\x00\x00\x00\x80"), { R(RBX, M) }, F2, 0, { { 0 } },
	    F2 | CF | PF | SF | OF, 0x80000000, "RW", 0, 0 },
	{ "test [rbx],ch", MODE_64, C("\x84\x2B"), { R(RBX, M), R(RCX, 0x8000) }, ALL, 0x80, { { 0 } }, F2 | SF, 0x80,
	    "r", 0, 0 },
	{ "test dword [rbx],0x10000", MODE_64, C("\xF7\x03\x00\x00\x01\x00"), { R(RBX, M) }, F2, 0xFFFF, { { 0 } },
	    F2 | PF | ZF, 0xFFFF, "r", 0, 0 },
	{ "test byte [rbx],0x81", MODE_64, C("\xF6\x03\x81"), { R(RBX, M) }, F2, 0xFF, { { 0 } }, F2 | PF | SF, 0xFF,
	    "r", 0, 0 },
	{ "not byte [rbx]: no flags", MODE_64, C("\xF6\x13"), { R(RBX, M) }, ALL, 0x0F, { { 0 } }, ALL, 0xF0, "RW", 0,
	    0 },
	{ "neg dword [rbx]: 0", MODE_64, C("\xF7\x1B"), { R(RBX, M) }, ALL, 0, { { 0 } }, F2 | PF | ZF, 0, "RW", 0, 0 },
	{ "neg dword [rbx]: 1", MODE_64, C("\xF7\x1B"), { R(RBX, M) }, F2, 1, { { 0 } }, F2 | CF | PF | AF | SF,
	    0xFFFFFFFF, "RW", 0, 0 },
	{ "neg dword [rbx]: 0x80000000", MODE_64, C("\xF7\x1B"), { R(RBX, M) }, F2, 0x80000000, { { 0 } },
	    F2 | CF | PF | SF | OF, 0x80000000, "RW", 0, 0 },
	{ "inc word [rbx]: 0x7FFF keeps CF", MODE_64, C("\x66\xFF\x03"), { R(RBX, M) }, F2 | CF, 0x7FFF, { { 0 } },
	    F2 | CF | PF | AF | SF | OF, 0x8000, "RW", 0, 0 },
	{ "dec byte [rbx]: 0 keeps CF clear", MODE_64, C("\xFE\x0B"), { R(RBX, M) }, F2, 0, { { 0 } },
	    F2 | PF | AF | SF, 0xFF, "RW", 0, 0 },
	{ "lock inc qword [rbx]: ~0", MODE_64, C("\xF0\x48\xFF\x03"), { R(RBX, M) }, F2, ~0ull, { { 0 } },
	    F2 | PF | AF | ZF, 0, "RW", 0, 0 },
	/* exchanges */
	{ "xchg [rbx],ecx", MODE_64, C("\x87\x0B"), { R(RBX, M), R(RCX, 0xFFFFFFFF00000001) }, F2, 0x8877665544332211,
	    { R(RCX, 0x44332211) }, F2, 0x8877665500000001, "RW", 0, 0 },
	{ "xchg [rbx],dh", MODE_64, C("\x86\x33"), { R(RBX, M), R(RDX, 0x1234) }, F2, 0x99, { R(RDX, 0x9934) }, F2,
	    0x12, "RW", 0, 0 },
	{ "cmpxchg [rbx],ecx: equal", MODE_64, C("\x0F\xB1\x0B"), { R(RBX, M), R(RAX, 0xFFFFFFFF00000007), R(RCX, 9) },
	    F2, 7, { { 0 } }, F2 | PF | ZF, 9, "RW", 0, 0 },
	{ "cmpxchg [rbx],ecx: differs, loads EAX", MODE_64, C("\x0F\xB1\x0B"),
	    { R(RBX, M), R(RAX, 0xFFFFFFFF00000007), R(RCX, 9) }, F2, 8, { R(RAX, 8) }, F2 | CF | PF | AF | SF, 8, "RW",
	    0, 0 },
	{ "lock cmpxchg [rbx],ah: byte, equal", MODE_64, C("\xF0\x0F\xB0\x23"), { R(RBX, M), R(RAX, 0x3344) }, F2, 0x44,
	    { { 0 } }, F2 | PF | ZF, 0x33, "RW", 0, 0 },
	{ "lock xadd [rbx],eax", MODE_64, C("\xF0\x0F\xC1\x03"), { R(RBX, M), R(RAX, 0xFFFFFFFF) }, F2, 1,
	    { R(RAX, 1) }, F2 | CF | PF | AF | ZF, 0, "RW", 0, 0 },
	/* bit tests */
	{ "bt dword [rbx],5", MODE_64, C("\x0F\xBA\x23\x05"), { R(RBX, M) }, ALL & ~CF, 0x20, { { 0 } }, ALL, 0x20, "r",
	    0, 0 },
	{ "bt dword [rbx],37 (imm mod 32)", MODE_64, C("\x0F\xBA\x23\x25"), { R(RBX, M) }, F2 | CF, 0x1F, { { 0 } }, F2,
	    0x1F, "r", 0, 0 },
	{ "bts dword [rbx],ecx: 33 is bit 1 of the next dword", MODE_64, C("\x0F\xAB\x0B"), { R(RBX, M), R(RCX, 33) },
	    F2, 0, { { 0 } }, F2, 0x200000000, "RW", 0, 0 },
	{ "btr dword [rbx],ecx: -1 is bit 31 of the dword below", MODE_64, C("\x0F\xB3\x0B"),
	    { R(RBX, M + 16), R(RCX, 0xFFFFFFFF) }, F2, 0xFFFFFFFFFFFFFFFF, { { 0 } }, F2 | CF, 0x7FFFFFFFFFFFFFFF,
	    "RW", M + 8, 0 },
	{ "btc qword [rbx],rcx: -65", MODE_64, C("\x48\x0F\xBB\x0B"), { R(RBX, M + 16), R(RCX, (u64)-65) }, F2, 0,
	    { { 0 } }, F2, 0x8000000000000000, "RW", 0, 0 },
	{ "bts word [rbx],cx: -32768 moves 4 KiB down", MODE_64, C("\x66\x0F\xAB\x0B"),
	    { R(RBX, RAM + 4096), R(RCX, 0xFFFF8000) }, F2, 0, { { 0 } }, F2, 1, "RW", RAM, 0 },
	/* 16-bit code (real mode): DS at RAM, SS at RAM + 0x800 */
	{ "mov [bx+si+0x10],al", MODE_16, C("\x88\x40\x10"), { R(RBX, 0x100), R(RSI, 0x20), R(RAX, 0xAB) }, F2, 0,
	    { { 0 } }, F2, 0xAB, "w", RAM + 0x130, 0 },
	{ "mov [bx+si],al wraps at 64 KiB", MODE_16, C("\x88\x00"), { R(RBX, 0xFFF0), R(RSI, 0x20), R(RAX, 0xAB) }, F2,
	    0, { { 0 } }, F2, 0xAB, "w", RAM + 0x10, 0 },
	{ "mov [bp+2],ax (SS)", MODE_16, C("\x89\x46\x02"), { R(RBP, 0x10), R(RAX, 0xBEEF) }, F2, 0, { { 0 } }, F2,
	    0xBEEF, "w", RAM + 0x812, 0 },
	{ "mov [0x300],ax (moffs16)", MODE_16, C("\xA3\x00\x03"), { R(RAX, 0x1234) }, F2, 0, { { 0 } }, F2, 0x1234, "w",
	    RAM + 0x300, 0 },
	{ "mov eax,[di] (66)", MODE_16, C("\x66\x8B\x05"), { R(RDI, 0x40) }, F2, 0x8877665544332211,
	    { R(RAX, 0x44332211) }, F2, 0x8877665544332211, "r", RAM + 0x40, 0 },
	{ "lock inc word [bx]", MODE_16, C("\xF0\xFF\x07"), { R(RBX, 0x8) }, F2, 0xFFFF, { { 0 } }, F2 | PF | AF | ZF,
	    0, "RW", RAM + 8, 0 },
	{ "add [ebx+ecx*2],dx (67)", MODE_16, C("\x67\x01\x14\x4B"), { R(RBX, 0x100), R(RCX, 0x8), R(RDX, 0x1) }, F2,
	    0x7FFF, { { 0 } }, F2 | PF | AF | SF | OF, 0x8000, "RW", RAM + 0x110, 0 },
	/* 32-bit code: DS at RAM, SS at RAM + 0x800, FS at M */
	{ "mov [ebx+ecx*4+0x10],eax", MODE_32, C("\x89\x44\x8B\x10"),
	    { R(RBX, 0x100), R(RCX, 1), R(RAX, 0xFFFFFFFF12345678) }, F2, 0, { { 0 } }, F2, 0x12345678, "w",
	    RAM + 0x114, 0 },
	{ "add dword [esp+4],1 (SS)", MODE_32, C("\x83\x44\x24\x04\x01"), { R(RSP, 0x10) }, F2, 0xFFFFFFFF, { { 0 } },
	    F2 | CF | PF | AF | ZF, 0, "RW", RAM + 0x814, 0 },
	{ "mov eax,[bx] (67)", MODE_32, C("\x67\x8B\x07"), { R(RBX, 0xFFFF0020) }, F2, 0x44332211,
	    { R(RAX, 0x44332211) }, F2, 0x44332211, "r", RAM + 0x20, 0 },
	{ "mov eax,fs:[0x300] (moffs32)", MODE_32, C("\x64\xA1\x00\x03\x00\x00"), { { 0 } }, F2, 0x44332211,
	    { R(RAX, 0x44332211) }, F2, 0x44332211, "r", M + 0x300, 0 },
	{ "or [0x20],cl (disp32)", MODE_32, C("\x08\x0D\x20\x00\x00\x00"), { R(RCX, 0x80) }, F2, 0x01, { { 0 } },
	    F2 | PF | SF, 0x81, "RW", RAM + 0x20, 0 },
	/* strings, one element per call */
	{ "movsb: MMIO to RAM, DF=0", MODE_64, C("\xA4"), { R(RSI, M), R(RDI, RAM) }, F2, 0,
	    { R(RSI, M + 1), R(RDI, RAM + 1) }, F2, 0x01, "rw", RAM, 0 },
	{ "rep movsd: RCX=3 runs one, RIP stays", MODE_64, C("\xF3\xA5"), { R(RSI, RAM), R(RDI, M), R(RCX, 3) }, F2, 0,
	    { R(RSI, RAM + 4), R(RDI, M + 4), R(RCX, 2) }, F2, 0x2A1D1003, "rw", M, true },
	{ "rep movsd: RCX=1 is the last, RIP moves on", MODE_64, C("\xF3\xA5"), { R(RSI, RAM), R(RDI, M), R(RCX, 1) },
	    F2, 0, { R(RSI, RAM + 4), R(RDI, M + 4), R(RCX, 0) }, F2, 0x2A1D1003, "rw", M, 0 },
	{ "rep movsb: RCX=0 does nothing", MODE_64, C("\xF3\xA4"), { R(RSI, RAM), R(RDI, M), R(RCX, 0) }, F2, 0x55,
	    { { 0 } }, F2, 0x55, "", 0, 0 },
	{ "rep stosw: DF=1 goes down", MODE_64, C("\xF3\x66\xAB"), { R(RDI, M + 8), R(RAX, 0x1234), R(RCX, 5) },
	    F2 | DF, 0, { R(RDI, M + 6), R(RCX, 4) }, F2 | DF, 0x1234, "w", M + 8, true },
	{ "rep movsq: DF=1", MODE_64, C("\xF3\x48\xA5"), { R(RSI, RAM + 8), R(RDI, M), R(RCX, 2) }, F2 | DF, 0,
	    { R(RSI, RAM), R(RDI, M - 8), R(RCX, 1) }, F2 | DF, 0xC6B9AC9F9285786B, "rw", M, true },
	{ "lodsd clears bits 63:32", MODE_64, C("\xAD"), { R(RSI, M) }, F2, 0x8877665544332211,
	    { R(RAX, 0x44332211), R(RSI, M + 4) }, F2, 0x8877665544332211, "r", 0, 0 },
	{ "rep lodsb", MODE_64, C("\xF3\xAC"), { R(RSI, M), R(RCX, 2) }, F2, 0x99,
	    { R(RAX, 0x5A5A5A5A5A5A5A99), R(RSI, M + 1), R(RCX, 1) }, F2, 0x99, "r", M, true },
	{ "fs movsb: the override is the source's", MODE_32, C("\x64\xA4"), { R(RSI, 0x300), R(RDI, 0x20) }, F2, 0,
	    { R(RSI, 0x301), R(RDI, 0x21) }, F2, 0x01, "rw", RAM + 0x20, 0 },
	{ "rep movsb (16-bit, DF=1): SI wraps, CX=0x10001 is 1", MODE_16, C("\xF3\xA4"),
	    { R(RSI, 0x12340000), R(RDI, 0x20), R(RCX, 0x10001) }, F2 | DF, 0,
	    { R(RSI, 0x1234FFFF), R(RDI, 0x1F), R(RCX, 0x10000) }, F2 | DF, 0x03, "rw", RAM + 0x20, 0 },
	{ "rep stosb (67 in 64-bit code): ECX and EDI", MODE_64, C("\x67\xF3\xAA"),
	    { R(RDI, 0xFFFFFFFF00000000 | RAM), R(RCX, 0x100000001), R(RAX, 0x77) }, F2, 0,
	    { R(RDI, RAM + 1), R(RCX, 0) }, F2, 0x77, "w", RAM, 0 },
};

static void fill8(struct model *m, u64 at, u64 v)
{
	u8 *p = locate(m, at, 8);
	if (p)
		memcpy(p, &v, 8);
}

static void run_table(void)
{
	static struct model m, before;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ecase *c = &cases[i];
		int failures = test_failures;
		u64 at = c->at ? c->at : M;
		model_init(&m);
		if (c->mode != MODE_64) {
			m.seg_base[SEG_DS] = m.seg_base[SEG_ES] = RAM;
			m.seg_base[SEG_SS] = RAM + 0x800;
			m.seg_base[SEG_FS] = M;
		}
		fill8(&m, at, c->mem);
		before = m;
		struct insn in;
		CHECK_EQ(decode_insn((const u8 *)c->code, c->n, c->mode, &in), DECODE_OK);
		CHECK_EQ(in.len, c->n);
		struct emu_regs r, want;
		for (unsigned k = 0; k < 16; k++)
			r.gpr[k] = default_reg(k);
		for (const struct regval *x = c->in; x < c->in + 4 && x->r1; x++)
			r.gpr[x->r1 - 1] = x->v;
		r.rip = 0x100;
		r.rflags = c->flags;
		want = r;
		for (const struct regval *x = c->out; x < c->out + 4 && x->r1; x++)
			want.gpr[x->r1 - 1] = x->v;
		want.rip = c->stays ? 0x100 : 0x100 + c->n;
		want.rflags = c->flags_out;

		CHECK_EQ(emulate(&in, &r, model_access, &m), EMU_OK);
		for (unsigned k = 0; k < 16; k++)
			if (r.gpr[k] != want.gpr[k]) {
				fprintf(stderr, "emulate: register %u: %#llx, want %#llx\n", k,
				    (unsigned long long)r.gpr[k], (unsigned long long)want.gpr[k]);
				CHECK(0);
			}
		CHECK_EQ(r.rip, want.rip);
		CHECK_EQ(r.rflags, want.rflags);
		CHECK(strcmp(m.log, c->log) == 0);
		/* The 8 bytes at `at` as expected, every other byte as it was. */
		fill8(&before, at, c->mem_out);
		CHECK(memcmp(&m.win, &before.win, sizeof(m.win)) == 0);
		if (test_failures != failures)
			fprintf(stderr, "emulate: ... in \"%s\" (accesses \"%s\")\n", c->what, m.log);
	}
}

/* A fault or refusal at any access leaves every register as it was; a fault before the write
 * leaves memory as it was. */
static void faults_change_nothing(void)
{
	static const char *codes[] = { "\x01\x03", "\xF3\xA5", "\x0F\xB1\x0B", "\x87\x0B", "\xF0\x0F\xAB\x0B" };
	static const u8 lens[] = { 2, 2, 3, 2, 5 };
	for (unsigned i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		for (int at = 0; at < 2; at++) {
			static struct model m, before;
			model_init(&m);
			m.fail_at = at;
			before = m;
			struct insn in;
			CHECK_EQ(decode_insn((const u8 *)codes[i], lens[i], MODE_64, &in), DECODE_OK);
			struct emu_regs r = { .rip = 0x100, .rflags = F2 };
			r.gpr[RBX] = r.gpr[RSI] = M;
			r.gpr[RDI] = RAM;
			r.gpr[RCX] = 7;
			struct emu_regs saved = r;
			CHECK_EQ(emulate(&in, &r, model_access, &m), EMU_FAULT);
			CHECK(memcmp(&r, &saved, sizeof(r)) == 0);
			CHECK(memcmp(&m.win, &before.win, sizeof(m.win)) == 0);
			CHECK_EQ(m.n, at + 1); /* nothing after the fault */
		}
	/* A refusal of the memory is passed on. */
	struct model m;
	model_init(&m);
	struct insn in;
	CHECK_EQ(decode_insn((const u8 *)"\x8B\x03", 2, MODE_64, &in), DECODE_OK);
	struct emu_regs r = { .rip = 0x100, .rflags = F2 };
	r.gpr[RBX] = 0x5000; /* outside the model */
	CHECK_EQ(emulate(&in, &r, model_access, &m), EMU_REFUSED);
	CHECK_EQ(r.rip, 0x100);
}

/* A REP MOVSW run to the end one call at a time moves the block and ends past the instruction. */
static void rep_runs_to_the_end(void)
{
	for (int down = 0; down < 2; down++) {
		static struct model m;
		model_init(&m);
		struct insn in;
		CHECK_EQ(decode_insn((const u8 *)"\xF3\x66\xA5", 3, MODE_64, &in), DECODE_OK);
		struct emu_regs r = { .rip = 0x100, .rflags = F2 | (down ? DF : 0) };
		r.gpr[RSI] = down ? RAM + 0x7E : RAM;
		r.gpr[RDI] = down ? M + 0x7E : M;
		r.gpr[RCX] = 64;
		unsigned calls = 0;
		while (r.rip == 0x100 && calls < 100) {
			CHECK_EQ(emulate(&in, &r, model_access, &m), EMU_OK);
			calls++;
		}
		CHECK_EQ(calls, 64);
		CHECK_EQ(r.rip, 0x103);
		CHECK_EQ(r.gpr[RCX], 0);
		CHECK_EQ(r.gpr[RSI], down ? RAM - 2 : RAM + 0x80);
		CHECK_EQ(r.gpr[RDI], down ? M - 2 : M + 0x80);
		CHECK(memcmp(m.win[0], m.win[1], 0x80) == 0);
	}
}

/* CMPS and SCAS: flags of the comparison, both pointers moved, REPE/REPNE stop on their condition. */
static void compare_strings(void)
{
	static struct model m;
	model_init(&m);
	struct insn in;
	fill8(&m, M, 0x4433221144332211);
	fill8(&m, RAM, 0x4433221244332211);
	CHECK_EQ(decode_insn((const u8 *)"\xA7", 1, MODE_64, &in), DECODE_OK); /* cmpsd */
	struct emu_regs r = { .rip = 0x100, .rflags = F2 | CF | SF };
	r.gpr[RSI] = M, r.gpr[RDI] = RAM;
	CHECK_EQ(emulate(&in, &r, model_access, &m), EMU_OK);
	CHECK_EQ(r.rflags, F2 | ZF | PF); /* equal */
	CHECK_EQ(r.gpr[RSI], M + 4);
	CHECK_EQ(r.gpr[RDI], RAM + 4);
	CHECK_EQ(r.rip, 0x101);
	r.rip = 0x100;
	CHECK_EQ(emulate(&in, &r, model_access, &m), EMU_OK);
	CHECK_EQ(r.rflags & (CF | ZF | SF | OF), CF | SF); /* 0x44332211 - 0x44332212 */

	/* repne scasb for 0x33 in 11 22 33 44: three elements, RIP moves on at the match. */
	CHECK_EQ(decode_insn((const u8 *)"\xF2\xAE", 2, MODE_64, &in), DECODE_OK);
	r = (struct emu_regs){ .rip = 0x100, .rflags = F2 };
	r.gpr[RAX] = 0x33, r.gpr[RDI] = M, r.gpr[RCX] = 10;
	unsigned calls = 0;
	while (r.rip == 0x100 && calls < 20) {
		CHECK_EQ(emulate(&in, &r, model_access, &m), EMU_OK);
		calls++;
	}
	CHECK_EQ(calls, 3);
	CHECK_EQ(r.gpr[RCX], 7);
	CHECK_EQ(r.gpr[RDI], M + 3);
	CHECK(r.rflags & ZF);

	/* repe scasb for 0x11: stops after the first element that differs (the second). */
	CHECK_EQ(decode_insn((const u8 *)"\xF3\xAE", 2, MODE_64, &in), DECODE_OK);
	r = (struct emu_regs){ .rip = 0x100, .rflags = F2 };
	r.gpr[RAX] = 0x11, r.gpr[RDI] = M, r.gpr[RCX] = 10;
	calls = 0;
	while (r.rip == 0x100 && calls < 20) {
		CHECK_EQ(emulate(&in, &r, model_access, &m), EMU_OK);
		calls++;
	}
	CHECK_EQ(calls, 2);
	CHECK_EQ(r.gpr[RCX], 8);
	CHECK(!(r.rflags & ZF));
	CHECK_EQ(r.rip, 0x102);
}

/* ---- Flags against the host processor. ---- */

/* op y, x (AT&T) on the host with CF in, returning x and RFLAGS; the red zone is stepped over. */
#define HOST2(insn, mod, T)                                                                                       \
	do {                                                                                                      \
		T x = (T)a, y = (T)b;                                                                             \
		__asm__ volatile("sub $128, %%rsp\n\tpush %[f]\n\tpopfq\n\t" insn " %" mod "[y], %" mod "[x]\n\t" \
				 "pushfq\n\tpop %[f]\n\tadd $128, %%rsp"                                          \
				 : [x] "+r"(x), [f] "+r"(f)                                                       \
				 : [y] "r"(y)                                                                     \
				 : "cc", "memory");                                                               \
		res = x;                                                                                          \
	} while (0)
#define HOST1(insn, mod, T)                                                                          \
	do {                                                                                         \
		T x = (T)a;                                                                          \
		(void)b;                                                                             \
		__asm__ volatile("sub $128, %%rsp\n\tpush %[f]\n\tpopfq\n\t" insn " %" mod "[x]\n\t" \
				 "pushfq\n\tpop %[f]\n\tadd $128, %%rsp"                             \
				 : [x] "+r"(x), [f] "+r"(f)                                          \
				 :                                                                   \
				 : "cc", "memory");                                                  \
		res = x;                                                                             \
	} while (0)
#define HOST(name, how, insn)                                 \
	static u64 name(u64 a, u64 b, unsigned size, u64 *fl) \
	{                                                     \
		u64 f = *fl, res;                             \
		switch (size) {                               \
		case 1:                                       \
			how(insn "b", "b", u8);               \
			break;                                \
		case 2:                                       \
			how(insn "w", "w", u16);              \
			break;                                \
		case 4:                                       \
			how(insn "l", "k", u32);              \
			break;                                \
		default:                                      \
			how(insn "q", "q", u64);              \
			break;                                \
		}                                             \
		*fl = f;                                      \
		return res;                                   \
	}
HOST(host_add, HOST2, "add")
HOST(host_or, HOST2, "or")
HOST(host_adc, HOST2, "adc")
HOST(host_sbb, HOST2, "sbb")
HOST(host_and, HOST2, "and")
HOST(host_sub, HOST2, "sub")
HOST(host_xor, HOST2, "xor")
HOST(host_cmp, HOST2, "cmp")
HOST(host_test, HOST2, "test")
HOST(host_inc, HOST1, "inc")
HOST(host_dec, HOST1, "dec")
HOST(host_neg, HOST1, "neg")
HOST(host_not, HOST1, "not")

/* Each operation: the host's version, the opcode of its m,r form (ALU: | 2 for r,m), or its
 * group opcode and ModRM. */
static const struct {
	enum insn_op op;
	u64 (*host)(u64, u64, unsigned, u64 *);
	u8 opcode, modrm; /* byte form; the others are opcode + 1 */
	bool both_ways, logic;
} host_ops[] = {
	{ OP_ADD, host_add, 0x00, 0x03, 1, 0 },
	{ OP_OR, host_or, 0x08, 0x03, 1, 1 },
	{ OP_ADC, host_adc, 0x10, 0x03, 1, 0 },
	{ OP_SBB, host_sbb, 0x18, 0x03, 1, 0 },
	{ OP_AND, host_and, 0x20, 0x03, 1, 1 },
	{ OP_SUB, host_sub, 0x28, 0x03, 1, 0 },
	{ OP_XOR, host_xor, 0x30, 0x03, 1, 1 },
	{ OP_CMP, host_cmp, 0x38, 0x03, 1, 0 },
	{ OP_TEST, host_test, 0x84, 0x03, 0, 1 },
	{ OP_INC, host_inc, 0xFE, 0x03, 0, 0 },
	{ OP_DEC, host_dec, 0xFE, 0x0B, 0, 0 },
	{ OP_NEG, host_neg, 0xF6, 0x1B, 0, 0 },
	{ OP_NOT, host_not, 0xF6, 0x13, 0, 0 },
};

static const u64 edge[] = {
	0,
	1,
	2,
	0x0F,
	0x10,
	0x7E,
	0x7F,
	0x80,
	0x81,
	0xFE,
	0xFF,
	0x100,
	0x7FFF,
	0x8000,
	0xFFFF,
	0x10000,
	0x7FFFFFFF,
	0x80000000,
	0xFFFFFFFF,
	0x100000000,
	0x7FFFFFFFFFFFFFFF,
	0x8000000000000000,
	~0ull,
	0x0123456789ABCDEF,
	0xFEDCBA9876543210,
};

/* Emulates one operation; *ok false when it did not run. */
static u64 emulated(unsigned o, unsigned size, bool reg_dst, u64 a, u64 b, u64 *fl, bool *ok)
{
	u8 code[4];
	unsigned n = 0;
	if (size == 2)
		code[n++] = 0x66;
	if (size == 8)
		code[n++] = 0x48;
	code[n++] = (u8)(host_ops[o].opcode + (size > 1) + (reg_dst ? 2 : 0));
	code[n++] = host_ops[o].modrm; /* [rbx], with al/ax/eax/rax */
	static struct model m;
	model_init(&m);
	struct insn in;
	*ok = decode_insn(code, n, MODE_64, &in) == DECODE_OK && in.op == host_ops[o].op;
	struct emu_regs r = { .rip = 0x100, .rflags = *fl };
	r.gpr[RBX] = M;
	r.gpr[RAX] = reg_dst ? a : b;
	memcpy(m.win[0], reg_dst ? &b : &a, 8);
	*ok = *ok && emulate(&in, &r, model_access, &m) == EMU_OK;
	*fl = r.rflags;
	u64 res = r.gpr[RAX];
	if (!reg_dst)
		memcpy(&res, m.win[0], 8);
	return size == 8 ? res : res & ((1ull << (8 * size)) - 1);
}

static u64 next_random(u64 *seed)
{
	return *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
}

static void flags_match_the_host(void)
{
	unsigned mismatches = 0, runs = 0;
	u64 seed = 0x9E3779B97F4A7C15ull;
	for (unsigned o = 0; o < sizeof(host_ops) / sizeof(host_ops[0]); o++)
		for (unsigned size = 1; size <= 8; size *= 2)
			for (unsigned i = 0; i < 25 + 40; i++)
				for (unsigned j = 0; j < 25 + 40; j++)
					for (int cin = 0; cin < 2; cin++)
						for (int way = 0; way <= host_ops[o].both_ways; way++) {
							u64 a = i < 25 ? edge[i] : next_random(&seed);
							u64 b = j < 25 ? edge[j] : next_random(&seed) >> (seed & 63);
							u64 mask = size == 8 ? ~0ull : (1ull << (8 * size)) - 1;
							a &= mask, b &= mask;
							u64 fin = F2 | (cin ? CF : 0), fh = fin, fe = fin;
							bool ok;
							u64 rh = host_ops[o].host(a, b, size, &fh);
							u64 re = emulated(o, size, way, a, b, &fe, &ok);
							/* AF after a logical operation is undefined: the emulator clears it. */
							u64 cmp = host_ops[o].logic ? RFLAGS_ARITH & ~AF : RFLAGS_ARITH;
							bool bad = !ok || (rh & mask) != re || ((fh ^ fe) & cmp) ||
								   (host_ops[o].logic && (fe & AF)) ||
								   (fe & ~RFLAGS_ARITH) != F2;
							runs++;
							if (bad && mismatches++ < 10)
								fprintf(stderr,
								    "flags: op %d size %u %s a=%#llx b=%#llx cf=%d: host %#llx/%#llx emulated %#llx/%#llx\n",
								    host_ops[o].op, size, way ? "r,m" : "m,r",
								    (unsigned long long)a, (unsigned long long)b, cin,
								    (unsigned long long)rh, (unsigned long long)fh,
								    (unsigned long long)re, (unsigned long long)fe);
						}
	CHECK_EQ(mismatches, 0);
	CHECK(runs > 100000);
}

/* BT/BTS/BTR/BTC against the host, register and immediate offsets, memory operands on the host. */
static void bit_tests_match_the_host(void)
{
	unsigned mismatches = 0;
	static const s64 offsets[] = { 0, 1, 15, 16, 31, 32, 63, 64, 100, -1, -16, -17, -33, -64, -65, -100 };
	for (unsigned op = 0; op < 4; op++)
		for (unsigned size = 2; size <= 8; size *= 2)
			for (unsigned k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
				u8 host[64], code[6];
				static struct model m;
				model_init(&m);
				for (unsigned i = 0; i < 64; i++)
					host[i] = m.win[0][0x800 - 32 + i];
				u64 off = (u64)offsets[k], f = F2;
				u8 *p = host + 32;
				/* The host: bt* %reg, (mem) with the operand size. */
				switch (op * 16 + size) {
					// clang-format off
#define BTH(o, s, insn, T) case o * 16 + s: { T x = (T)off; __asm__ volatile("sub $128, %%rsp\n\tpush %[f]\n\tpopfq\n\t" insn " %[x], (%[p])\n\tpushfq\n\tpop %[f]\n\tadd $128, %%rsp" : [f] "+r"(f) : [x] "r"(x), [p] "r"(p) : "cc", "memory"); break; }
				BTH(0, 2, "btw", u16) BTH(0, 4, "btl", u32) BTH(0, 8, "btq", u64)
				BTH(1, 2, "btsw", u16) BTH(1, 4, "btsl", u32) BTH(1, 8, "btsq", u64)
				BTH(2, 2, "btrw", u16) BTH(2, 4, "btrl", u32) BTH(2, 8, "btrq", u64)
				BTH(3, 2, "btcw", u16) BTH(3, 4, "btcl", u32) BTH(3, 8, "btcq", u64)
#undef BTH
					// clang-format on
				}
				unsigned n = 0;
				if (size == 2)
					code[n++] = 0x66;
				if (size == 8)
					code[n++] = 0x48;
				code[n++] = 0x0F;
				code[n++] = (u8)(0xA3 + 8 * op);
				code[n++] = 0x0B; /* [rbx], rcx */
				struct insn in;
				CHECK_EQ(decode_insn(code, n, MODE_64, &in), DECODE_OK);
				struct emu_regs r = { .rip = 0x100, .rflags = F2 };
				r.gpr[RBX] = M + 0x800;
				r.gpr[RCX] = off;
				bool bad = emulate(&in, &r, model_access, &m) != EMU_OK || ((r.rflags ^ f) & CF) ||
					   (r.rflags & ~CF) != F2 || memcmp(host, &m.win[0][0x800 - 32], 64) != 0;
				if (bad && mismatches++ < 10)
					fprintf(stderr, "bt: op %u size %u offset %lld\n", op, size,
					    (long long)offsets[k]);
			}
	CHECK_EQ(mismatches, 0);
}

TESTS(emulate_tests) = {
	{ "emulate: every form on a model memory, 16-, 32- and 64-bit code", run_table },
	{ "emulate: a fault or refusal changes no register", faults_change_nothing },
	{ "emulate: REP MOVSW one element per call, DF=0 and DF=1", rep_runs_to_the_end },
	{ "emulate: CMPS and SCAS flags, REPE and REPNE stop on their condition", compare_strings },
	{ "emulate: ALU flags and results equal the host's (sizes 1-8, both directions)", flags_match_the_host },
	{ "emulate: BT/BTS/BTR/BTC with register offsets equal the host's", bit_tests_match_the_host },
	{ NULL, NULL },
};
