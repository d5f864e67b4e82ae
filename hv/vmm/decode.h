/*
 * Decoding of the x86 instructions Parapet emulates when one touches a trapped MMIO page (AMD APM
 * vol. 3 ch. 1-3 and app. A, Intel SDM vol. 2 ch. 2 and app. A), in 16-, 32- and 64-bit code:
 * legacy prefixes (66 operand size, 67 address size, segment overrides, F0 LOCK, F2/F3 REP), REX
 * (W, R, X, B; only in 64-bit code), ModRM, SIB, displacement and RIP-relative addressing. The
 * forms, by what they do with their memory operand m (r: a general register, imm: immediate):
 *
 *  reads m         8A 8B MOV r,m          A0 A1 MOV AL/rAX,moffs    0F B6 B7 MOVZX r,m8/m16
 *                  0F BE BF MOVSX r,m8/m16                        63 MOVSXD r,m32 (64-bit code)
 *                  02 03 0A 0B 12 13 1A 1B 22 23 2A 2B 32 33 3A 3B  ADD OR ADC SBB AND SUB XOR CMP r,m
 *                  38 39 CMP m,r    80 81 83 /7 CMP m,imm    84 85 TEST m,r    F6 F7 /0 TEST m,imm
 *                  0F A3 BT m,r     0F BA /4 BT m,imm8       AC AD LODS
 *  writes m        88 89 MOV m,r    C6 C7 /0 MOV m,imm      A2 A3 MOV moffs,AL/rAX
 *                  0F C3 MOVNTI m,r (32/64-bit)             AA AB STOS
 *  read-modify-write (LOCK allowed; XCHG is locked without it):
 *                  00 01 08 09 10 11 18 19 20 21 28 29 30 31  ADD OR ADC SBB AND SUB XOR m,r
 *                  80 81 83 /0-/6 the same with imm         F6 F7 /2 NOT  /3 NEG   FE FF /0 INC /1 DEC
 *                  86 87 XCHG m,r   0F AB B3 BB BTS BTR BTC m,r   0F BA /5 /6 /7 BTS BTR BTC m,imm8
 *                  0F B0 B1 CMPXCHG m,r                     0F C0 C1 XADD m,r
 *                  AE AF SCAS (compares rAX with ES:[rDI])
 *  reads one operand and writes another: A4 A5 MOVS
 *  reads two:      A6 A7 CMPS (compares [rSI] with ES:[rDI])
 *
 * Odd opcodes (and 0F B7/BF) are the 16/32/64-bit forms of the even byte forms. moffs is an
 * address of the address size (2, 4 or 8 bytes) in place of ModRM. BT/BTS/BTR/BTC with a
 * register bit offset reach beyond m: emulate.c moves the operand by the offset. The string forms
 * take F3 or F2 as REP (CMPS and SCAS: F3 repeats while equal, F2 while not equal); their
 * source is DS:rSI (override allowed), their destination ES:rDI.
 * Refused (DECODE_UNSUPPORTED): every other opcode, a register operand (ModRM mod 3: no memory),
 * LOCK on a form that is not read-modify-write, F2/F3 before a 0F opcode, 66 before MOVNTI.
 *
 * For string I/O, decode_prefixes() reads the prefixes in front of INS/OUTS. The decoder only
 * reads the bytes it is given: it is hardware-free and is fuzzed (hv/fuzz/).
 */
#ifndef PARAPET_DECODE_H
#define PARAPET_DECODE_H

#include "core/types.h"

#define INSN_MAX_LEN 15

/* The code's default sizes: CS.D (or real mode) gives 16/32, long mode with CS.L gives 64. */
enum cpu_mode { MODE_16, MODE_32, MODE_64 };

enum decode_error {
	DECODE_OK = 0,
	DECODE_TRUNCATED,   /* ran past the bytes given or past 15 bytes */
	DECODE_UNSUPPORTED, /* an opcode, form or prefix Parapet does not emulate */
};

struct prefixes {
	u8 len;              /* bytes of legacy prefixes and REX */
	u8 opsize, addrsize; /* effective sizes in bytes: 2/4/8 */
	int8_t seg;          /* segment override (enum sreg), or -1 */
	bool rep, repne, lock;
	u8 rex; /* the REX byte, 0 if none (only in 64-bit mode) */
};

/* What an instruction does; the first eight in the order of the ALU opcodes (bits 5:3). */
enum insn_op {
	OP_ADD,
	OP_OR,
	OP_ADC,
	OP_SBB,
	OP_AND,
	OP_SUB,
	OP_XOR,
	OP_CMP,
	OP_TEST,
	OP_NOT,
	OP_NEG,
	OP_INC,
	OP_DEC,
	OP_MOV,
	OP_MOVZX,
	OP_MOVSX,
	OP_XCHG,
	OP_CMPXCHG,
	OP_XADD,
	OP_BT,
	OP_BTS,
	OP_BTR,
	OP_BTC, /* in the order of 0F BA /4-/7 */
	OP_MOVS,
	OP_STOS,
	OP_LODS,
	OP_CMPS,
	OP_SCAS,
	OP_NR
};

/* Where the memory operand m stands. */
enum insn_form {
	FORM_MEM_REG, /* op m, r: m is the destination (or is only compared/tested) */
	FORM_REG_MEM, /* op r, m: the register is the destination */
	FORM_MEM_IMM, /* op m, imm */
	FORM_MEM,     /* op m */
	FORM_STRING,  /* MOVS, STOS, LODS, CMPS, SCAS: [rSI] and/or [rDI] */
};

/* What happens to m. MOVS reads its source and writes its destination (ACC_READ | ACC_WRITE). */
enum insn_access { ACC_READ = 1, ACC_WRITE = 2, ACC_RMW = 3 };

struct insn {
	u8 len;         /* total instruction length */
	u8 mode;        /* enum cpu_mode it was decoded in */
	u8 op;          /* enum insn_op */
	u8 form;        /* enum insn_form */
	u8 access;      /* enum insn_access */
	u8 size;        /* bytes of m: 1, 2, 4 or 8 (strings: of each element) */
	u8 reg;         /* the register operand 0-15 (enum gpr); rAX for strings, A0-A3 */
	bool reg_high8; /* AH, CH, DH, BH: bits 8-15 of register reg */
	u8 reg_size;    /* bytes of the register operand (MOVZX/MOVSX/MOVSXD: wider than m) */
	bool lock;      /* LOCK, or XCHG */
	bool rep;       /* string form with F3 or F2 */
	bool repne;     /* ... with F2: CMPS and SCAS repeat while not equal */
	u64 imm;        /* FORM_MEM_IMM: sign-extended, truncated to size */
	/* m: seg:[base + index*scale + disp], or [rip_next + disp]; strings: seg is the source's */
	int8_t seg;         /* enum sreg */
	int8_t base, index; /* register numbers, or -1 */
	u8 scale;
	bool rip_rel;
	s64 disp;
	u8 addrsize; /* 2, 4 or 8 */
};

/* Legacy prefixes and REX at the start of b[0..n). */
enum decode_error decode_prefixes(const u8 *b, unsigned n, enum cpu_mode mode, struct prefixes *p);

/* One instruction from b[0..n) (n may exceed the instruction). */
enum decode_error decode_insn(const u8 *b, unsigned n, enum cpu_mode mode, struct insn *in);

/* The memory operand's effective address (offset in its segment), truncated to its address
 * size. rip_next is the address of the next instruction (for RIP-relative forms). */
u64 insn_mem_offset(const struct insn *in, const u64 gpr[16], u64 rip_next);

#endif
