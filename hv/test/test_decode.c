/* The MMIO instruction decoder: a table of byte sequences and what they decode to, and what
 * must be refused. */
#include "test.h"
#include "vmm/decode.h"
#include "vmm/vcpu.h"

struct good {
	const char *what;
	enum cpu_mode mode;
	u8 bytes[16];
	u8 n;
	/* expected */
	u8 len;
	enum insn_kind kind;
	u8 size, reg, reg_size;
	bool high8, has_imm;
	u64 imm;
	int8_t seg, base, index;
	u8 scale;
	bool rip_rel;
	s64 disp;
	u8 addrsize;
};

static const struct good good[] = {
	{ "mov eax,[rbx]", MODE_64, { 0x8B, 0x03 }, 2, 2, INSN_LOAD, 4, RAX, 4, 0, 0, 0, SEG_DS, RBX, -1, 1, 0, 0, 8 },
	{ "mov [rdi+8],ecx", MODE_64, { 0x89, 0x4F, 0x08 }, 3, 3, INSN_STORE, 4, RCX, 0, 0, 0, 0, SEG_DS, RDI, -1, 1, 0, 8, 8 },
	{ "mov r9,[r12+r13*8-0x80]", MODE_64, { 0x4F, 0x8B, 0x4C, 0xEC, 0x80 }, 5, 5, INSN_LOAD, 8, R9, 8, 0, 0, 0, SEG_DS, R12, R13, 8, 0, -128, 8 },
	{ "mov ax,[rbp+0x100]", MODE_64, { 0x66, 0x8B, 0x85, 0x00, 0x01, 0, 0 }, 7, 7, INSN_LOAD, 2, RAX, 2, 0, 0, 0, SEG_SS, RBP, -1, 1, 0, 0x100, 8 },
	{ "mov ah,[rsi]", MODE_64, { 0x8A, 0x26 }, 2, 2, INSN_LOAD, 1, RAX, 1, 1, 0, 0, SEG_DS, RSI, -1, 1, 0, 0, 8 },
	{ "mov spl,[rsi] (REX)", MODE_64, { 0x40, 0x8A, 0x26 }, 3, 3, INSN_LOAD, 1, RSP, 1, 0, 0, 0, SEG_DS, RSI, -1, 1, 0, 0, 8 },
	{ "mov [rip+0x10],dl", MODE_64, { 0x88, 0x15, 0x10, 0, 0, 0 }, 6, 6, INSN_STORE, 1, RDX, 0, 0, 0, 0, SEG_DS, -1, -1, 1, 1, 0x10, 8 },
	{ "mov dword [rax],0x12345678", MODE_64, { 0xC7, 0x00, 0x78, 0x56, 0x34, 0x12 }, 6, 6, INSN_STORE, 4, 0, 0, 0, 1, 0x12345678, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "mov qword [rax],-1 (imm32 sign-extended)", MODE_64, { 0x48, 0xC7, 0x00, 0xFF, 0xFF, 0xFF, 0xFF }, 7, 7, INSN_STORE, 8, 0, 0, 0, 1, ~0ull, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "mov word [rax],0xBEEF", MODE_64, { 0x66, 0xC7, 0x00, 0xEF, 0xBE }, 5, 5, INSN_STORE, 2, 0, 0, 0, 1, 0xBEEF, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "mov byte [rcx+rdx],0x5A", MODE_64, { 0xC6, 0x04, 0x11, 0x5A }, 4, 4, INSN_STORE, 1, 0, 0, 0, 1, 0x5A, SEG_DS, RCX, RDX, 1, 0, 0, 8 },
	{ "movzx eax,byte [rdi]", MODE_64, { 0x0F, 0xB6, 0x07 }, 3, 3, INSN_LOAD, 1, RAX, 4, 0, 0, 0, SEG_DS, RDI, -1, 1, 0, 0, 8 },
	{ "movzx r10,word [rdi]", MODE_64, { 0x4C, 0x0F, 0xB7, 0x17 }, 4, 4, INSN_LOAD, 2, R10, 8, 0, 0, 0, SEG_DS, RDI, -1, 1, 0, 0, 8 },
	{ "mov eax,fs:[rbx]", MODE_64, { 0x64, 0x8B, 0x03 }, 3, 3, INSN_LOAD, 4, RAX, 4, 0, 0, 0, SEG_FS, RBX, -1, 1, 0, 0, 8 },
	{ "mov eax,[ebx] (67)", MODE_64, { 0x67, 0x8B, 0x03 }, 3, 3, INSN_LOAD, 4, RAX, 4, 0, 0, 0, SEG_DS, RBX, -1, 1, 0, 0, 4 },
	{ "mov eax,[disp32] via SIB", MODE_64, { 0x8B, 0x04, 0x25, 0x00, 0x00, 0xB0, 0xFE }, 7, 7, INSN_LOAD, 4, RAX, 4, 0, 0, 0, SEG_DS, -1, -1, 1, 0, (s64)(int32_t)0xFEB00000, 8 },
	{ "REX then 66 cancels REX.W", MODE_64, { 0x48, 0x66, 0x8B, 0x03 }, 4, 4, INSN_LOAD, 2, RAX, 2, 0, 0, 0, SEG_DS, RBX, -1, 1, 0, 0, 8 },
	{ "mov [esp+4],eax (32-bit)", MODE_32, { 0x89, 0x44, 0x24, 0x04 }, 4, 4, INSN_STORE, 4, RAX, 0, 0, 0, 0, SEG_SS, RSP, -1, 1, 0, 4, 4 },
	{ "mov eax,[0xFEC00000] (32-bit absolute)", MODE_32, { 0xA1 - 0xA1 + 0x8B, 0x05, 0x00, 0x00, 0xC0, 0xFE }, 6, 6, INSN_LOAD, 4, RAX, 4, 0, 0, 0, SEG_DS, -1, -1, 1, 0, (s64)(int32_t)0xFEC00000, 4 },
	{ "es mov [bx+si+2],al (16-bit)", MODE_16, { 0x26, 0x88, 0x40, 0x02 }, 4, 4, INSN_STORE, 1, RAX, 0, 0, 0, 0, SEG_ES, RBX, RSI, 1, 0, 2, 2 },
	{ "mov ax,[bp] (16-bit, SS)", MODE_16, { 0x8B, 0x46, 0x00 }, 3, 3, INSN_LOAD, 2, RAX, 2, 0, 0, 0, SEG_SS, RBP, -1, 1, 0, 0, 2 },
	{ "mov eax,[0x1234] (16-bit, 66)", MODE_16, { 0x66, 0x8B, 0x06, 0x34, 0x12 }, 5, 5, INSN_LOAD, 4, RAX, 4, 0, 0, 0, SEG_DS, -1, -1, 1, 0, 0x1234, 2 },
	{ "mov eax,[ebx+ecx*4] (16-bit code, 67)", MODE_16, { 0x67, 0x66, 0x8B, 0x04, 0x8B }, 5, 5, INSN_LOAD, 4, RAX, 4, 0, 0, 0, SEG_DS, RBX, RCX, 4, 0, 0, 4 },
};

struct bad {
	const char *what;
	enum cpu_mode mode;
	u8 bytes[16];
	u8 n;
	enum decode_error err;
};

static const struct bad bad[] = {
	{ "register operand", MODE_64, { 0x89, 0xC0 }, 2, DECODE_UNSUPPORTED },
	{ "add", MODE_64, { 0x01, 0x03 }, 2, DECODE_UNSUPPORTED },
	{ "lock mov", MODE_64, { 0xF0, 0x89, 0x03 }, 3, DECODE_UNSUPPORTED },
	{ "rep movs", MODE_64, { 0xF3, 0xA5 }, 2, DECODE_UNSUPPORTED },
	{ "C7 /1", MODE_64, { 0xC7, 0x08, 0, 0, 0, 0 }, 6, DECODE_UNSUPPORTED },
	{ "0F 0B", MODE_64, { 0x0F, 0x0B }, 2, DECODE_UNSUPPORTED },
	{ "truncated displacement", MODE_64, { 0x8B, 0x83, 0x00 }, 3, DECODE_TRUNCATED },
	{ "truncated immediate", MODE_64, { 0xC7, 0x00, 0x01, 0x02 }, 4, DECODE_TRUNCATED },
	{ "only prefixes", MODE_64, { 0x66, 0x66, 0x66 }, 3, DECODE_TRUNCATED },
	{ "longer than 15 bytes", MODE_64, { 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x8B, 0x83, 0x00 }, 16, DECODE_TRUNCATED },
	{ "empty", MODE_32, { 0 }, 0, DECODE_TRUNCATED },
};

static void decodes_table(void)
{
	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct good *g = &good[i];
		struct insn in;
		enum decode_error e = decode_insn(g->bytes, g->n, g->mode, &in);
		if (e != DECODE_OK) {
			fprintf(stderr, "decode: %s: error %d\n", g->what, e);
			CHECK(0);
			continue;
		}
		int before = test_failures;
		CHECK_EQ(in.len, g->len);
		CHECK_EQ(in.kind, g->kind);
		CHECK_EQ(in.size, g->size);
		CHECK_EQ(in.has_imm, g->has_imm);
		if (g->has_imm)
			CHECK_EQ(in.imm, g->imm);
		else
			CHECK_EQ(in.reg, g->reg);
		if (g->kind == INSN_LOAD)
			CHECK_EQ(in.reg_size, g->reg_size);
		CHECK_EQ(in.reg_high8, g->high8);
		CHECK_EQ(in.seg, g->seg);
		CHECK_EQ(in.base, g->base);
		CHECK_EQ(in.index, g->index);
		if (g->index >= 0)
			CHECK_EQ(in.scale, g->scale);
		CHECK_EQ(in.rip_rel, g->rip_rel);
		CHECK_EQ(in.disp, g->disp);
		CHECK_EQ(in.addrsize, g->addrsize);
		if (test_failures != before)
			fprintf(stderr, "decode: ... in \"%s\"\n", g->what);
	}
}

static void refuses_table(void)
{
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct insn in;
		enum decode_error e = decode_insn(bad[i].bytes, bad[i].n, bad[i].mode, &in);
		if (e != bad[i].err)
			fprintf(stderr, "decode: %s: got %d\n", bad[i].what, e);
		CHECK_EQ(e, bad[i].err);
	}
}

static void effective_addresses(void)
{
	u64 gpr[16] = { 0 };
	struct insn in;
	gpr[R12] = 0x1000;
	gpr[R13] = 3;
	CHECK_EQ(decode_insn((const u8 *)"\x4F\x8B\x4C\xEC\x80", 5, MODE_64, &in), DECODE_OK);
	CHECK_EQ(insn_mem_offset(&in, gpr, 0), 0x1000 + 24 - 128);
	CHECK_EQ(decode_insn((const u8 *)"\x88\x15\x10\x00\x00\x00", 6, MODE_64, &in), DECODE_OK);
	CHECK_EQ(insn_mem_offset(&in, gpr, 0xFFFFFFFF80001006ull), 0xFFFFFFFF80001016ull);
	/* 16-bit: BX+SI wraps at 64 KiB. */
	gpr[RBX] = 0x1FFFF;
	gpr[RSI] = 0x0003;
	CHECK_EQ(decode_insn((const u8 *)"\x26\x88\x40\x02", 4, MODE_16, &in), DECODE_OK);
	CHECK_EQ(insn_mem_offset(&in, gpr, 0), 0x0004);
	/* 32-bit address size in 64-bit code truncates. */
	gpr[RBX] = 0x1FFFFFFF0ull;
	CHECK_EQ(decode_insn((const u8 *)"\x67\x8B\x43\x20", 4, MODE_64, &in), DECODE_OK);
	CHECK_EQ(insn_mem_offset(&in, gpr, 0), 0x10);
}

static void prefixes_of_string_io(void)
{
	struct prefixes p;
	CHECK_EQ(decode_prefixes((const u8 *)"\xF3\x26\x6E", 3, MODE_16, &p), DECODE_OK);
	CHECK_EQ(p.len, 2);
	CHECK_EQ(p.seg, SEG_ES);
	CHECK(p.rep);
	CHECK_EQ(decode_prefixes((const u8 *)"\x64\x67\xF3\x48\x6F", 5, MODE_64, &p), DECODE_OK);
	CHECK_EQ(p.len, 4);
	CHECK_EQ(p.seg, SEG_FS);
	CHECK_EQ(p.addrsize, 4);
	CHECK_EQ(p.rex, 0x48);
	CHECK_EQ(decode_prefixes((const u8 *)"\x6E", 1, MODE_32, &p), DECODE_OK);
	CHECK_EQ(p.len, 0);
	CHECK_EQ(p.seg, -1);
}

TESTS(decode_tests) = {
	{ "decode: MOV/MOVZX forms in 16-, 32- and 64-bit code", decodes_table },
	{ "decode: other instructions and truncated bytes are refused", refuses_table },
	{ "decode: effective addresses (SIB, RIP-relative, wrap)", effective_addresses },
	{ "decode: prefixes in front of INS/OUTS", prefixes_of_string_io },
	{ NULL, NULL },
};
