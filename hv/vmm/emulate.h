/*
 * Execution of one decoded instruction (vmm/decode.h) on a register file and an abstract memory,
 * for MMIO emulation (vmm/mmio.c). Hardware-free: the unit tests compare its flags with the host
 * processor's, and a fuzzer runs it against a model memory. AMD APM vol. 3, Intel SDM vol. 2:
 *
 * Flags. Only the arithmetic flags change, as the processor sets them:
 *   ADD ADC SUB SBB CMP NEG XADD CMPXCHG   CF PF AF ZF SF OF
 *   INC DEC                                PF AF ZF SF OF (CF kept)
 *   AND OR XOR TEST                        PF ZF SF; CF = OF = 0; AF (undefined) = 0
 *   BT BTS BTR BTC                         CF = the bit (the others kept)
 *   MOV MOVZX MOVSX XCHG NOT, strings      none
 * Registers. An 8- or 16-bit write keeps the rest of the register, a 32-bit write clears bits
 * 63:32; AH CH DH BH are bits 15:8. XCHG and XADD load the register with the old m; CMPXCHG
 * writes m in both outcomes (the old value when rAX differs, and then loads rAX), as the
 * processor does.
 * Bit tests. With a register bit offset (sign-extended from the operand size) m moves by
 * (offset >> log2(bits)) * size bytes and the bit is offset mod bits; an immediate is taken
 * mod bits and does not move m.
 * Strings. One element per call: MOVS reads [seg:rSI] and writes [ES:rDI], STOS writes rAX to
 * [ES:rDI], LODS loads rAX from [seg:rSI]; rSI/rDI move by the element size (down when DF=1) within
 * the address size. With REP: rCX = 0 (of the address size) does nothing; else one element and
 * rCX - 1, and RIP stays on the instruction until rCX reaches 0, so that it runs again.
 * Order. The reads, then at most one write, last. The registers are updated only when every access
 * succeeded: an instruction completes or changes no register (a read may have reached a device).
 * LOCK (and XCHG) are two calls, a read and a write: the memory decides how atomic they are.
 */
#ifndef PARAPET_EMULATE_H
#define PARAPET_EMULATE_H

#include "vmm/decode.h"

#define RFLAGS_CF (1ull << 0)
#define RFLAGS_PF (1ull << 2)
#define RFLAGS_AF (1ull << 4)
#define RFLAGS_ZF (1ull << 6)
#define RFLAGS_SF (1ull << 7)
#define RFLAGS_DF (1ull << 10)
#define RFLAGS_OF (1ull << 11)
#define RFLAGS_ARITH (RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF)

/* One access of the instruction to memory: size bytes at offset off of segment seg. */
struct emu_access {
	u64 off;     /* already truncated to the address size */
	u8 seg;      /* enum sreg */
	u8 size;     /* 1, 2, 4 or 8 */
	u8 addrsize; /* 2, 4 or 8 */
	bool write;
	bool rmw; /* a read-modify-write: the read (with write intent) and the write */
};

enum emu_status {
	EMU_OK = 0,
	EMU_FAULT,   /* the memory raised an exception (its context says which) */
	EMU_REFUSED, /* the memory cannot do the access */
};

/* A read sets *val (little-endian, in its low size bytes); a write passes it. */
typedef enum emu_status (*emu_access_fn)(void *ctx, const struct emu_access *a, u64 *val);

struct emu_regs {
	u64 gpr[16]; /* enum gpr */
	u64 rip, rflags;
};

/* Execute in, decoded at r->rip, through mem. *r changes only when the result is EMU_OK. */
enum emu_status emulate(const struct insn *in, struct emu_regs *r, emu_access_fn mem, void *ctx);

#endif
