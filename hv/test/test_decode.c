/* The MMIO instruction decoder: a table of byte sequences and what they decode to (every form of
 * decode.h), what must be refused, and truncated bytes. */
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
	enum insn_op op;
	enum insn_form form;
	enum insn_access access;
	u8 size, reg, reg_size;
	bool high8, lock;
	u64 imm;
	int8_t seg, base, index;
	u8 scale;
	bool rip_rel;
	s64 disp;
	u8 addrsize;
};

#define LD OP_MOV, FORM_REG_MEM, ACC_READ
#define ST OP_MOV, FORM_MEM_REG, ACC_WRITE
#define STI OP_MOV, FORM_MEM_IMM, ACC_WRITE
#define STR FORM_STRING

static const struct good good[] = {
	/* MOV, MOVZX: what the decoder has always done */
	{ "mov eax,[rbx]", MODE_64, { 0x8B, 0x03 }, 2, 2, LD, 4, RAX, 4, 0, 0, 0, SEG_DS, RBX, -1, 1, 0, 0, 8 },
	{ "mov [rdi+8],ecx", MODE_64, { 0x89, 0x4F, 0x08 }, 3, 3, ST, 4, RCX, 4, 0, 0, 0, SEG_DS, RDI, -1, 1, 0, 8, 8 },
	{ "mov r9,[r12+r13*8-0x80]", MODE_64, { 0x4F, 0x8B, 0x4C, 0xEC, 0x80 }, 5, 5, LD, 8, R9, 8, 0, 0, 0, SEG_DS,
	    R12, R13, 8, 0, -128, 8 },
	{ "mov ax,[rbp+0x100]", MODE_64, { 0x66, 0x8B, 0x85, 0x00, 0x01, 0, 0 }, 7, 7, LD, 2, RAX, 2, 0, 0, 0, SEG_SS,
	    RBP, -1, 1, 0, 0x100, 8 },
	{ "mov ah,[rsi]", MODE_64, { 0x8A, 0x26 }, 2, 2, LD, 1, RAX, 1, 1, 0, 0, SEG_DS, RSI, -1, 1, 0, 0, 8 },
	{ "mov spl,[rsi] (REX)", MODE_64, { 0x40, 0x8A, 0x26 }, 3, 3, LD, 1, RSP, 1, 0, 0, 0, SEG_DS, RSI, -1, 1, 0, 0,
	    8 },
	{ "mov [rip+0x10],dl", MODE_64, { 0x88, 0x15, 0x10, 0, 0, 0 }, 6, 6, ST, 1, RDX, 1, 0, 0, 0, SEG_DS, -1, -1, 1,
	    1, 0x10, 8 },
	{ "mov dword [rax],0x12345678", MODE_64, { 0xC7, 0x00, 0x78, 0x56, 0x34, 0x12 }, 6, 6, STI, 4, 0, 4, 0, 0,
	    0x12345678, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "mov qword [rax],-1 (imm32 sign-extended)", MODE_64, { 0x48, 0xC7, 0x00, 0xFF, 0xFF, 0xFF, 0xFF }, 7, 7, STI,
	    8, 0, 8, 0, 0, ~0ull, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "mov word [rax],0xBEEF", MODE_64, { 0x66, 0xC7, 0x00, 0xEF, 0xBE }, 5, 5, STI, 2, 0, 2, 0, 0, 0xBEEF, SEG_DS,
	    RAX, -1, 1, 0, 0, 8 },
	{ "mov byte [rcx+rdx],0x5A", MODE_64, { 0xC6, 0x04, 0x11, 0x5A }, 4, 4, STI, 1, 0, 1, 0, 0, 0x5A, SEG_DS, RCX,
	    RDX, 1, 0, 0, 8 },
	{ "movzx eax,byte [rdi]", MODE_64, { 0x0F, 0xB6, 0x07 }, 3, 3, OP_MOVZX, FORM_REG_MEM, ACC_READ, 1, RAX, 4, 0,
	    0, 0, SEG_DS, RDI, -1, 1, 0, 0, 8 },
	{ "movzx r10,word [rdi]", MODE_64, { 0x4C, 0x0F, 0xB7, 0x17 }, 4, 4, OP_MOVZX, FORM_REG_MEM, ACC_READ, 2, R10,
	    8, 0, 0, 0, SEG_DS, RDI, -1, 1, 0, 0, 8 },
	{ "mov eax,fs:[rbx]", MODE_64, { 0x64, 0x8B, 0x03 }, 3, 3, LD, 4, RAX, 4, 0, 0, 0, SEG_FS, RBX, -1, 1, 0, 0,
	    8 },
	{ "mov eax,[ebx] (67)", MODE_64, { 0x67, 0x8B, 0x03 }, 3, 3, LD, 4, RAX, 4, 0, 0, 0, SEG_DS, RBX, -1, 1, 0, 0,
	    4 },
	{ "mov eax,[disp32] via SIB", MODE_64, { 0x8B, 0x04, 0x25, 0x00, 0x00, 0xB0, 0xFE }, 7, 7, LD, 4, RAX, 4, 0, 0,
	    0, SEG_DS, -1, -1, 1, 0, (s64)(int32_t)0xFEB00000, 8 },
	{ "REX then 66 cancels REX.W", MODE_64, { 0x48, 0x66, 0x8B, 0x03 }, 4, 4, LD, 2, RAX, 2, 0, 0, 0, SEG_DS, RBX,
	    -1, 1, 0, 0, 8 },
	{ "mov [esp+4],eax (32-bit)", MODE_32, { 0x89, 0x44, 0x24, 0x04 }, 4, 4, ST, 4, RAX, 4, 0, 0, 0, SEG_SS, RSP,
	    -1, 1, 0, 4, 4 },
	{ "mov eax,[0xFEC00000] (32-bit absolute)", MODE_32, { 0x8B, 0x05, 0x00, 0x00, 0xC0, 0xFE }, 6, 6, LD, 4, RAX,
	    4, 0, 0, 0, SEG_DS, -1, -1, 1, 0, (s64)(int32_t)0xFEC00000, 4 },
	{ "es mov [bx+si+2],al (16-bit)", MODE_16, { 0x26, 0x88, 0x40, 0x02 }, 4, 4, ST, 1, RAX, 1, 0, 0, 0, SEG_ES,
	    RBX, RSI, 1, 0, 2, 2 },
	{ "mov ax,[bp] (16-bit, SS)", MODE_16, { 0x8B, 0x46, 0x00 }, 3, 3, LD, 2, RAX, 2, 0, 0, 0, SEG_SS, RBP, -1, 1,
	    0, 0, 2 },
	{ "mov eax,[0x1234] (16-bit, 66)", MODE_16, { 0x66, 0x8B, 0x06, 0x34, 0x12 }, 5, 5, LD, 4, RAX, 4, 0, 0, 0,
	    SEG_DS, -1, -1, 1, 0, 0x1234, 2 },
	{ "mov eax,[ebx+ecx*4] (16-bit code, 67)", MODE_16, { 0x67, 0x66, 0x8B, 0x04, 0x8B }, 5, 5, LD, 4, RAX, 4, 0, 0,
	    0, SEG_DS, RBX, RCX, 4, 0, 0, 4 },
	/* moffs: A0-A3 */
	{ "mov [moffs64],eax (the APIC ICR)", MODE_64, { 0xA3, 0x00, 0x03, 0xE0, 0xFE, 0, 0, 0, 0 }, 9, 9, ST, 4, RAX,
	    4, 0, 0, 0, SEG_DS, -1, -1, 1, 0, 0xFEE00300, 8 },
	{ "mov al,[moffs32] (67 in 64-bit code)", MODE_64, { 0x67, 0xA0, 0x00, 0x03, 0xE0, 0xFE }, 6, 6, LD, 1, RAX, 1,
	    0, 0, 0, SEG_DS, -1, -1, 1, 0, 0xFEE00300, 4 },
	{ "mov rax,gs:[moffs64]", MODE_64, { 0x65, 0x48, 0xA1, 8, 7, 6, 5, 4, 3, 2, 1 }, 11, 11, LD, 8, RAX, 8, 0, 0, 0,
	    SEG_GS, -1, -1, 1, 0, 0x0102030405060708, 8 },
	{ "mov ax,[moffs16] (16-bit)", MODE_16, { 0xA1, 0x34, 0x12 }, 3, 3, LD, 2, RAX, 2, 0, 0, 0, SEG_DS, -1, -1, 1,
	    0, 0x1234, 2 },
	{ "mov fs:[moffs32],eax (32-bit)", MODE_32, { 0x64, 0xA3, 0x00, 0x00, 0xC0, 0xFE }, 6, 6, ST, 4, RAX, 4, 0, 0,
	    0, SEG_FS, -1, -1, 1, 0, 0xFEC00000, 4 },
	{ "mov [moffs16],al (32-bit code, 67)", MODE_32, { 0x67, 0xA2, 0x10, 0x00 }, 4, 4, ST, 1, RAX, 1, 0, 0, 0,
	    SEG_DS, -1, -1, 1, 0, 0x10, 2 },
	/* ALU, both directions, immediates */
	{ "add [rbx],eax", MODE_64, { 0x01, 0x03 }, 2, 2, OP_ADD, FORM_MEM_REG, ACC_RMW, 4, RAX, 4, 0, 0, 0, SEG_DS,
	    RBX, -1, 1, 0, 0, 8 },
	{ "cmp [rbx],al", MODE_64, { 0x38, 0x03 }, 2, 2, OP_CMP, FORM_MEM_REG, ACC_READ, 1, RAX, 1, 0, 0, 0, SEG_DS,
	    RBX, -1, 1, 0, 0, 8 },
	{ "sub ecx,[rbx]", MODE_32, { 0x2B, 0x0B }, 2, 2, OP_SUB, FORM_REG_MEM, ACC_READ, 4, RCX, 4, 0, 0, 0, SEG_DS,
	    RBX, -1, 1, 0, 0, 4 },
	{ "sbb bh,[rbx]", MODE_64, { 0x1A, 0x3B }, 2, 2, OP_SBB, FORM_REG_MEM, ACC_READ, 1, RBX, 1, 1, 0, 0, SEG_DS,
	    RBX, -1, 1, 0, 0, 8 },
	{ "lock or dword [rax],0x10 (83)", MODE_64, { 0xF0, 0x83, 0x08, 0x10 }, 4, 4, OP_OR, FORM_MEM_IMM, ACC_RMW, 4,
	    0, 4, 0, 1, 0x10, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "add qword [rax],-1 (83, REX.W)", MODE_64, { 0x48, 0x83, 0x00, 0xFF }, 4, 4, OP_ADD, FORM_MEM_IMM, ACC_RMW, 8,
	    0, 8, 0, 0, ~0ull, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "and word [rax],0xFF00 (81)", MODE_64, { 0x66, 0x81, 0x20, 0x00, 0xFF }, 5, 5, OP_AND, FORM_MEM_IMM, ACC_RMW,
	    2, 0, 2, 0, 0, 0xFF00, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "xor dword [rax],0x80000000 (81)", MODE_32, { 0x81, 0x30, 0, 0, 0, 0x80 }, 6, 6, OP_XOR, FORM_MEM_IMM,
	    ACC_RMW, 4, 0, 4, 0, 0, 0x80000000, SEG_DS, RAX, -1, 1, 0, 0, 4 },
	{ "cmp byte [rax],0x80 (80 /7)", MODE_64, { 0x80, 0x38, 0x80 }, 3, 3, OP_CMP, FORM_MEM_IMM, ACC_READ, 1, 0, 1,
	    0, 0, 0x80, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "adc [bx],dx (16-bit)", MODE_16, { 0x11, 0x17 }, 2, 2, OP_ADC, FORM_MEM_REG, ACC_RMW, 2, RDX, 2, 0, 0, 0,
	    SEG_DS, RBX, -1, 1, 0, 0, 2 },
	{ "test [rax],ch", MODE_64, { 0x84, 0x28 }, 2, 2, OP_TEST, FORM_MEM_REG, ACC_READ, 1, RCX, 1, 1, 0, 0, SEG_DS,
	    RAX, -1, 1, 0, 0, 8 },
	{ "test dword [rax],1", MODE_64, { 0xF7, 0x00, 1, 0, 0, 0 }, 6, 6, OP_TEST, FORM_MEM_IMM, ACC_READ, 4, 0, 4, 0,
	    0, 1, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "not byte [rax]", MODE_64, { 0xF6, 0x10 }, 2, 2, OP_NOT, FORM_MEM, ACC_RMW, 1, 0, 1, 0, 0, 0, SEG_DS, RAX, -1,
	    1, 0, 0, 8 },
	{ "lock neg qword [rax]", MODE_64, { 0xF0, 0x48, 0xF7, 0x18 }, 4, 4, OP_NEG, FORM_MEM, ACC_RMW, 8, 0, 8, 0, 1,
	    0, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "inc word [rax]", MODE_64, { 0x66, 0xFF, 0x00 }, 3, 3, OP_INC, FORM_MEM, ACC_RMW, 2, 0, 2, 0, 0, 0, SEG_DS,
	    RAX, -1, 1, 0, 0, 8 },
	{ "dec byte [rax]", MODE_64, { 0xFE, 0x08 }, 2, 2, OP_DEC, FORM_MEM, ACC_RMW, 1, 0, 1, 0, 0, 0, SEG_DS, RAX, -1,
	    1, 0, 0, 8 },
	{ "xchg [rax],r8d (locked)", MODE_64, { 0x44, 0x87, 0x00 }, 3, 3, OP_XCHG, FORM_MEM_REG, ACC_RMW, 4, R8, 4, 0,
	    1, 0, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	/* bit tests, CMPXCHG, XADD, MOVSX, MOVSXD, MOVNTI */
	{ "bt [rax],edx", MODE_64, { 0x0F, 0xA3, 0x10 }, 3, 3, OP_BT, FORM_MEM_REG, ACC_READ, 4, RDX, 4, 0, 0, 0,
	    SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "lock bts [rax],rdx", MODE_64, { 0xF0, 0x48, 0x0F, 0xAB, 0x10 }, 5, 5, OP_BTS, FORM_MEM_REG, ACC_RMW, 8, RDX,
	    8, 0, 1, 0, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "btr [rax],dx", MODE_64, { 0x66, 0x0F, 0xB3, 0x10 }, 4, 4, OP_BTR, FORM_MEM_REG, ACC_RMW, 2, RDX, 2, 0, 0, 0,
	    SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "btc [rax],edx", MODE_64, { 0x0F, 0xBB, 0x10 }, 3, 3, OP_BTC, FORM_MEM_REG, ACC_RMW, 4, RDX, 4, 0, 0, 0,
	    SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "bt dword [rax],5", MODE_64, { 0x0F, 0xBA, 0x20, 5 }, 4, 4, OP_BT, FORM_MEM_IMM, ACC_READ, 4, 0, 4, 0, 0, 5,
	    SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "btc qword [rax],63", MODE_64, { 0x48, 0x0F, 0xBA, 0x38, 63 }, 5, 5, OP_BTC, FORM_MEM_IMM, ACC_RMW, 8, 0, 8,
	    0, 0, 63, SEG_DS, RAX, -1, 1, 0, 0, 8 },
	{ "cmpxchg [rdi],ecx", MODE_64, { 0x0F, 0xB1, 0x0F }, 3, 3, OP_CMPXCHG, FORM_MEM_REG, ACC_RMW, 4, RCX, 4, 0, 0,
	    0, SEG_DS, RDI, -1, 1, 0, 0, 8 },
	{ "lock cmpxchg [rdi],dh", MODE_64, { 0xF0, 0x0F, 0xB0, 0x37 }, 4, 4, OP_CMPXCHG, FORM_MEM_REG, ACC_RMW, 1, RDX,
	    1, 1, 1, 0, SEG_DS, RDI, -1, 1, 0, 0, 8 },
	{ "lock xadd [rdi],eax", MODE_64, { 0xF0, 0x0F, 0xC1, 0x07 }, 4, 4, OP_XADD, FORM_MEM_REG, ACC_RMW, 4, RAX, 4,
	    0, 1, 0, SEG_DS, RDI, -1, 1, 0, 0, 8 },
	{ "movsx eax,byte [rdi]", MODE_64, { 0x0F, 0xBE, 0x07 }, 3, 3, OP_MOVSX, FORM_REG_MEM, ACC_READ, 1, RAX, 4, 0,
	    0, 0, SEG_DS, RDI, -1, 1, 0, 0, 8 },
	{ "movsx rax,word [rdi]", MODE_64, { 0x48, 0x0F, 0xBF, 0x07 }, 4, 4, OP_MOVSX, FORM_REG_MEM, ACC_READ, 2, RAX,
	    8, 0, 0, 0, SEG_DS, RDI, -1, 1, 0, 0, 8 },
	{ "movsxd r11,[rdi]", MODE_64, { 0x4C, 0x63, 0x1F }, 3, 3, OP_MOVSX, FORM_REG_MEM, ACC_READ, 4, R11, 8, 0, 0, 0,
	    SEG_DS, RDI, -1, 1, 0, 0, 8 },
	{ "movnti [rdi],eax", MODE_64, { 0x0F, 0xC3, 0x07 }, 3, 3, ST, 4, RAX, 4, 0, 0, 0, SEG_DS, RDI, -1, 1, 0, 0,
	    8 },
	{ "movnti [rdi],r9", MODE_64, { 0x4C, 0x0F, 0xC3, 0x0F }, 4, 4, ST, 8, R9, 8, 0, 0, 0, SEG_DS, RDI, -1, 1, 0, 0,
	    8 },
	/* strings */
	{ "rep movsd (32-bit)", MODE_32, { 0xF3, 0xA5 }, 2, 2, OP_MOVS, STR, ACC_READ | ACC_WRITE, 4, RAX, 4, 0, 0, 0,
	    SEG_DS, -1, -1, 1, 0, 0, 4 },
	{ "es movsb", MODE_32, { 0x26, 0xA4 }, 2, 2, OP_MOVS, STR, ACC_READ | ACC_WRITE, 1, RAX, 1, 0, 0, 0, SEG_ES, -1,
	    -1, 1, 0, 0, 4 },
	{ "rep stosq", MODE_64, { 0xF3, 0x48, 0xAB }, 3, 3, OP_STOS, STR, ACC_WRITE, 8, RAX, 8, 0, 0, 0, SEG_DS, -1, -1,
	    1, 0, 0, 8 },
	{ "lodsw (16-bit)", MODE_16, { 0xAD }, 1, 1, OP_LODS, STR, ACC_READ, 2, RAX, 2, 0, 0, 0, SEG_DS, -1, -1, 1, 0,
	    0, 2 },
	{ "rep lodsb with 67 (64-bit)", MODE_64, { 0x67, 0xF3, 0xAC }, 3, 3, OP_LODS, STR, ACC_READ, 1, RAX, 1, 0, 0, 0,
	    SEG_DS, -1, -1, 1, 0, 0, 4 },
};

/* Which of the good rows carry REP (strings only). */
static bool has_rep(const struct good *g)
{
	for (unsigned i = 0; i < g->n; i++)
		if (g->bytes[i] == 0xF3 || g->bytes[i] == 0xF2)
			return g->form == FORM_STRING;
	return false;
}

struct bad {
	const char *what;
	enum cpu_mode mode;
	u8 bytes[16];
	u8 n;
	enum decode_error err;
};

static const struct bad bad[] = {
	{ "register operand", MODE_64, { 0x89, 0xC0 }, 2, DECODE_UNSUPPORTED },
	{ "register operand of an ALU form", MODE_64, { 0x01, 0xC3 }, 2, DECODE_UNSUPPORTED },
	{ "lock mov", MODE_64, { 0xF0, 0x89, 0x03 }, 3, DECODE_UNSUPPORTED },
	{ "lock cmp", MODE_64, { 0xF0, 0x39, 0x03 }, 3, DECODE_UNSUPPORTED },
	{ "lock bt", MODE_64, { 0xF0, 0x0F, 0xA3, 0x03 }, 4, DECODE_UNSUPPORTED },
	{ "lock movs", MODE_64, { 0xF0, 0xA5 }, 2, DECODE_UNSUPPORTED },
	{ "C7 /1", MODE_64, { 0xC7, 0x08, 0, 0, 0, 0 }, 6, DECODE_UNSUPPORTED },
	{ "F6 /1", MODE_64, { 0xF6, 0x08, 0 }, 3, DECODE_UNSUPPORTED },
	{ "F7 /4 (MUL)", MODE_64, { 0xF7, 0x20 }, 2, DECODE_UNSUPPORTED },
	{ "FF /2 (CALL)", MODE_64, { 0xFF, 0x10 }, 2, DECODE_UNSUPPORTED },
	{ "0F BA /3", MODE_64, { 0x0F, 0xBA, 0x18, 1 }, 4, DECODE_UNSUPPORTED },
	{ "63 in 32-bit code (ARPL)", MODE_32, { 0x63, 0x03 }, 2, DECODE_UNSUPPORTED },
	{ "66 MOVNTI", MODE_64, { 0x66, 0x0F, 0xC3, 0x03 }, 4, DECODE_UNSUPPORTED },
	{ "F3 before 0F (TZCNT-like)", MODE_64, { 0xF3, 0x0F, 0xB6, 0x03 }, 4, DECODE_UNSUPPORTED },
	{ "LOCK CMPS", MODE_64, { 0xF0, 0xA6 }, 2, DECODE_UNSUPPORTED },
	{ "0F 0B", MODE_64, { 0x0F, 0x0B }, 2, DECODE_UNSUPPORTED },
	{ "truncated displacement", MODE_64, { 0x8B, 0x83, 0x00 }, 3, DECODE_TRUNCATED },
	{ "truncated immediate", MODE_64, { 0xC7, 0x00, 0x01, 0x02 }, 4, DECODE_TRUNCATED },
	{ "truncated moffs64", MODE_64, { 0xA3, 0x00, 0x03, 0xE0, 0xFE }, 5, DECODE_TRUNCATED },
	{ "group opcode without ModRM", MODE_64, { 0xF6 }, 1, DECODE_TRUNCATED },
	{ "0F alone", MODE_64, { 0x0F }, 1, DECODE_TRUNCATED },
	{ "only prefixes", MODE_64, { 0x66, 0x66, 0x66 }, 3, DECODE_TRUNCATED },
	{ "longer than 15 bytes", MODE_64,
	    { 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x8B, 0x83, 0x00 }, 16,
	    DECODE_TRUNCATED },
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
		CHECK_EQ(in.mode, g->mode);
		CHECK_EQ(in.op, g->op);
		CHECK_EQ(in.form, g->form);
		CHECK_EQ(in.access, g->access);
		CHECK_EQ(in.size, g->size);
		CHECK_EQ(in.lock, g->lock);
		CHECK_EQ(in.rep, has_rep(g));
		if (g->form == FORM_MEM_IMM)
			CHECK_EQ(in.imm, g->imm);
		if (g->form != FORM_MEM_IMM && g->form != FORM_MEM) {
			CHECK_EQ(in.reg, g->reg);
			CHECK_EQ(in.reg_size, g->reg_size);
			CHECK_EQ(in.reg_high8, g->high8);
		}
		CHECK_EQ(in.seg, g->seg);
		if (g->form != FORM_STRING) {
			CHECK_EQ(in.base, g->base);
			CHECK_EQ(in.index, g->index);
			if (g->index >= 0)
				CHECK_EQ(in.scale, g->scale);
			CHECK_EQ(in.rip_rel, g->rip_rel);
			CHECK_EQ(in.disp, g->disp);
		}
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

/* Every form of the table decodes in full and refuses each shorter prefix of its bytes. */
static void truncations(void)
{
	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct insn in;
		for (unsigned n = 0; n < good[i].len; n++)
			if (decode_insn(good[i].bytes, n, good[i].mode, &in) != DECODE_TRUNCATED) {
				fprintf(stderr, "decode: %s: %u bytes accepted\n", good[i].what, n);
				CHECK(0);
			}
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
	{ "decode: every form in 16-, 32- and 64-bit code", decodes_table },
	{ "decode: other instructions, LOCK misuse and truncated bytes are refused", refuses_table },
	{ "decode: each form cut short is truncated", truncations },
	{ "decode: effective addresses (SIB, RIP-relative, wrap)", effective_addresses },
	{ "decode: prefixes in front of INS/OUTS", prefixes_of_string_io },
	{ NULL, NULL },
};
