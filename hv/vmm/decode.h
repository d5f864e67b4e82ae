/*
 * Decoding of the few x86 instructions Parapet emulates (AMD APM vol. 3, Intel SDM vol. 2):
 * for a trapped MMIO page, the moves between a register or an immediate and memory
 *   88 /r  MOV r/m8, r8        8A /r  MOV r8, r/m8        C6 /0  MOV r/m8, imm8
 *   89 /r  MOV r/m, r          8B /r  MOV r, r/m          C7 /0  MOV r/m, imm16/32
 *   0F B6 /r  MOVZX r, r/m8    0F B7 /r  MOVZX r, r/m16
 * with legacy prefixes, REX, ModRM/SIB/displacement, RIP-relative addressing, in 16-, 32- and
 * 64-bit code; and, for string I/O, the prefixes in front of INS/OUTS. The decoder only reads
 * the bytes it is given: it is hardware-free and is fuzzed (hv/fuzz/).
 */
#ifndef PARAPET_DECODE_H
#define PARAPET_DECODE_H

#include "core/types.h"

#define INSN_MAX_LEN 15

/* The code's default sizes: CS.D (or real mode) gives 16/32, long mode with CS.L gives 64. */
enum cpu_mode { MODE_16, MODE_32, MODE_64 };

enum decode_error {
	DECODE_OK = 0,
	DECODE_TRUNCATED,       /* ran past the bytes given or past 15 bytes */
	DECODE_UNSUPPORTED,     /* an opcode, form or prefix Parapet does not emulate */
};

struct prefixes {
	u8 len;                 /* bytes of legacy prefixes and REX */
	u8 opsize, addrsize;    /* effective sizes in bytes: 2/4/8 */
	int8_t seg;                 /* segment override (enum sreg), or -1 */
	bool rep, repne, lock;
	u8 rex;                 /* the REX byte, 0 if none (only in 64-bit mode) */
};

enum insn_kind { INSN_LOAD, INSN_STORE };

struct insn {
	u8 len;                 /* total instruction length */
	enum insn_kind kind;    /* LOAD: memory -> register; STORE: register or immediate -> memory */
	u8 size;                /* bytes of memory accessed: 1, 2, 4 or 8 */
	u8 reg;                 /* register number 0-15 (enum gpr) */
	bool reg_high8;         /* AH, CH, DH, BH: bits 8-15 of register reg */
	u8 reg_size;            /* bytes of the register written by a LOAD (MOVZX: wider than size) */
	bool has_imm;           /* a STORE of imm (already sign-extended to size) */
	u64 imm;
	/* The memory operand: seg:[base + index*scale + disp], or [rip_next + disp] */
	int8_t seg;                 /* enum sreg */
	int8_t base, index;         /* register numbers, or -1 */
	u8 scale;
	bool rip_rel;
	s64 disp;
	u8 addrsize;            /* 2, 4 or 8 */
};

/* Legacy prefixes and REX at the start of b[0..n). */
enum decode_error decode_prefixes(const u8 *b, unsigned n, enum cpu_mode mode, struct prefixes *p);

/* One instruction from b[0..n) (n may exceed the instruction). */
enum decode_error decode_insn(const u8 *b, unsigned n, enum cpu_mode mode, struct insn *in);

/* The memory operand's effective address (offset in its segment), truncated to its address
 * size. rip_next is the address of the next instruction (for RIP-relative forms). */
u64 insn_mem_offset(const struct insn *in, const u64 gpr[16], u64 rip_next);

#endif
