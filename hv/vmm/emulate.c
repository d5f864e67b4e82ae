/* Instruction execution for MMIO emulation: see emulate.h. */
#include "vmm/emulate.h"
#include "vmm/vcpu.h"

/* How an operation computes its result from the destination a and the source b. */
enum calc { C_MOVE, C_ADD, C_SUB, C_AND, C_OR, C_XOR, C_NOT, C_BT, C_BTS, C_BTR, C_BTC };

/* Where b comes from, when not from the source operand. */
enum source { B_SOURCE, B_ONE, B_NEGATE /* a = 0, b = m */ };

#define ARITH RFLAGS_ARITH
#define NOCF (RFLAGS_ARITH & ~RFLAGS_CF)

static const struct semantics {
	u8 calc, source;
	bool carry;  /* ADC, SBB: CF is the carry (borrow) in */
	bool stores; /* the result goes to the destination (CMP, TEST, BT: flags only) */
	u16 flags;   /* the RFLAGS bits it writes */
} sem[OP_NR] = {
	[OP_ADD] = { C_ADD, B_SOURCE, false, true, ARITH },
	[OP_OR] = { C_OR, B_SOURCE, false, true, ARITH },
	[OP_ADC] = { C_ADD, B_SOURCE, true, true, ARITH },
	[OP_SBB] = { C_SUB, B_SOURCE, true, true, ARITH },
	[OP_AND] = { C_AND, B_SOURCE, false, true, ARITH },
	[OP_SUB] = { C_SUB, B_SOURCE, false, true, ARITH },
	[OP_XOR] = { C_XOR, B_SOURCE, false, true, ARITH },
	[OP_CMP] = { C_SUB, B_SOURCE, false, false, ARITH },
	[OP_TEST] = { C_AND, B_SOURCE, false, false, ARITH },
	[OP_NOT] = { C_NOT, B_SOURCE, false, true, 0 },
	[OP_NEG] = { C_SUB, B_NEGATE, false, true, ARITH },
	[OP_INC] = { C_ADD, B_ONE, false, true, NOCF },
	[OP_DEC] = { C_SUB, B_ONE, false, true, NOCF },
	[OP_MOV] = { C_MOVE, B_SOURCE, false, true, 0 },
	[OP_MOVZX] = { C_MOVE, B_SOURCE, false, true, 0 },
	[OP_MOVSX] = { C_MOVE, B_SOURCE, false, true, 0 },
	[OP_XCHG] = { C_MOVE, B_SOURCE, false, true, 0 },
	[OP_CMPXCHG] = { C_SUB, B_SOURCE, false, true, ARITH }, /* the flags of CMP rAX, m */
	[OP_XADD] = { C_ADD, B_SOURCE, false, true, ARITH },
	[OP_BT] = { C_BT, B_SOURCE, false, false, RFLAGS_CF },
	[OP_BTS] = { C_BTS, B_SOURCE, false, true, RFLAGS_CF },
	[OP_BTR] = { C_BTR, B_SOURCE, false, true, RFLAGS_CF },
	[OP_BTC] = { C_BTC, B_SOURCE, false, true, RFLAGS_CF },
	[OP_MOVS] = { C_MOVE, B_SOURCE, false, true, 0 },
	[OP_STOS] = { C_MOVE, B_SOURCE, false, true, 0 },
	[OP_LODS] = { C_MOVE, B_SOURCE, false, true, 0 },
	[OP_CMPS] = { C_SUB, B_SOURCE, false, false, ARITH },
	[OP_SCAS] = { C_SUB, B_SOURCE, false, false, ARITH },
};

static u64 mask_of(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

static s64 sext(u64 v, unsigned size)
{
	unsigned sh = 64 - 8 * size;
	return (s64)(v << sh) >> sh;
}

/* PF: set when the low byte has an even number of ones. */
static u64 parity_even(u64 x)
{
	x &= 0xFF;
	x ^= x >> 4;
	x ^= x >> 2;
	x ^= x >> 1;
	return ~x & 1;
}

/*
 * The result of op on size-byte operands, and its flags into *rflags. Addition and subtraction
 * are one adder: a - b - borrow is a + ~b + !borrow, and each borrow is the complement of the
 * adder's carry. Carry out of bit i: (a & b | (a ^ b) & ~res) at i; into bit i: (a ^ b ^ res) at i.
 */
static u64 alu(enum insn_op op, u64 a, u64 b, unsigned size, u64 *rflags)
{
	const struct semantics *s = &sem[op];
	unsigned top = 8 * size - 1;
	u64 res, fl = 0;
	switch (s->calc) {
	case C_ADD:
	case C_SUB: {
		u64 sub = s->calc == C_SUB, bb = sub ? ~b : b;
		u64 cin = (s->carry ? *rflags & RFLAGS_CF : 0) ^ sub;
		res = a + bb + cin;
		u64 cout = (a & bb) | ((a ^ bb) & ~res), cinto = a ^ bb ^ res;
		fl = (((cout >> top) ^ sub) & 1) * RFLAGS_CF | (((cout >> 3) ^ sub) & 1) * RFLAGS_AF |
		     (((cout ^ cinto) >> top) & 1) * RFLAGS_OF;
		break;
	}
	case C_AND:
		res = a & b;
		break;
	case C_OR:
		res = a | b;
		break;
	case C_XOR:
		res = a ^ b;
		break;
	case C_NOT:
		res = ~a;
		break;
	case C_BT:
	case C_BTS:
	case C_BTR:
	case C_BTC: {
		u64 bit = 1ull << (b & top);
		fl = (a & bit) ? RFLAGS_CF : 0;
		res = s->calc == C_BTS ? a | bit : s->calc == C_BTR ? a & ~bit : s->calc == C_BTC ? a ^ bit : a;
		break;
	}
	default:
		res = b;
		break;
	}
	res &= mask_of(size);
	fl |= (res == 0) * RFLAGS_ZF | ((res >> top) & 1) * RFLAGS_SF | parity_even(res) * RFLAGS_PF;
	*rflags = (*rflags & ~(u64)s->flags) | (fl & s->flags);
	return res;
}

/* A register write of size bytes as the processor does it: 8 and 16 bits merge, 32 zero-extend. */
static void put(u64 *reg, u64 val, unsigned size)
{
	*reg = size == 4 ? (u32)val : (*reg & ~mask_of(size)) | (val & mask_of(size));
}

static u64 get_reg(const struct emu_regs *r, const struct insn *in)
{
	u64 x = r->gpr[in->reg];
	return in->reg_high8 ? (x >> 8) & 0xFF : x & mask_of(in->reg_size);
}

static void set_reg(struct emu_regs *r, const struct insn *in, u64 val)
{
	u64 *x = &r->gpr[in->reg];
	if (in->reg_high8)
		*x = (*x & ~0xFF00ull) | ((val & 0xFF) << 8);
	else
		put(x, val, in->reg_size);
}

/* One element of CMPS (flags of [rSI] - ES:[rDI]) or SCAS (flags of rAX - ES:[rDI]); with REP,
 * F3 repeats while equal (ZF set), F2 while not. */
static enum emu_status compare(const struct insn *in, struct emu_regs *r, u64 next_rip, emu_access_fn mem, void *ctx)
{
	u64 amask = mask_of(in->addrsize), step = (r->rflags & RFLAGS_DF) ? -(u64)in->size : in->size;
	struct emu_access src = { r->gpr[RSI] & amask, in->seg, in->size, in->addrsize, false, false };
	struct emu_access dst = { r->gpr[RDI] & amask, SEG_ES, in->size, in->addrsize, false, false };
	u64 a = r->gpr[RAX], b = 0;
	enum emu_status st;
	if (in->op == OP_CMPS && (st = mem(ctx, &src, &a)))
		return st;
	if ((st = mem(ctx, &dst, &b)))
		return st;
	alu(in->op, a & mask_of(in->size), b & mask_of(in->size), in->size, &r->rflags);
	if (in->op == OP_CMPS)
		put(&r->gpr[RSI], src.off + step, in->addrsize);
	put(&r->gpr[RDI], dst.off + step, in->addrsize);
	bool again = false;
	if (in->rep) {
		put(&r->gpr[RCX], (r->gpr[RCX] & amask) - 1, in->addrsize);
		again = (r->gpr[RCX] & amask) && !(r->rflags & RFLAGS_ZF) == in->repne;
	}
	if (!again)
		r->rip = next_rip;
	return EMU_OK;
}

/* One element of MOVS, STOS or LODS (or CMPS, SCAS: compare()). */
static enum emu_status string(const struct insn *in, struct emu_regs *r, u64 next_rip, emu_access_fn mem, void *ctx)
{
	u64 amask = mask_of(in->addrsize), step = (r->rflags & RFLAGS_DF) ? -(u64)in->size : in->size;
	if (in->rep && !(r->gpr[RCX] & amask)) {
		r->rip = next_rip;
		return EMU_OK;
	}
	if (in->op == OP_CMPS || in->op == OP_SCAS)
		return compare(in, r, next_rip, mem, ctx);
	struct emu_access src = { r->gpr[RSI] & amask, in->seg, in->size, in->addrsize, false, false };
	struct emu_access dst = { r->gpr[RDI] & amask, SEG_ES, in->size, in->addrsize, true, false };
	u64 val = r->gpr[RAX];
	enum emu_status st;
	if (in->access & ACC_READ) {
		if ((st = mem(ctx, &src, &val)))
			return st;
		put(&r->gpr[RSI], src.off + step, in->addrsize);
	}
	val &= mask_of(in->size);
	if (in->access & ACC_WRITE) {
		if ((st = mem(ctx, &dst, &val)))
			return st;
		put(&r->gpr[RDI], dst.off + step, in->addrsize);
	}
	if (in->op == OP_LODS)
		put(&r->gpr[RAX], val, in->size);
	if (in->rep)
		put(&r->gpr[RCX], (r->gpr[RCX] & amask) - 1, in->addrsize);
	if (!in->rep || !(r->gpr[RCX] & amask))
		r->rip = next_rip;
	return EMU_OK;
}

/* An instruction with one memory operand m and a register or immediate operand. */
static enum emu_status one_operand(const struct insn *in, struct emu_regs *r, u64 next_rip, emu_access_fn mem,
    void *ctx)
{
	const struct semantics *s = &sem[in->op];
	struct emu_access a = { insn_mem_offset(in, r->gpr, next_rip), (u8)in->seg, in->size, in->addrsize, false,
		in->access == ACC_RMW };
	u64 other = in->form == FORM_MEM_IMM ? in->imm : get_reg(r, in), m = 0; /* the operand beside m */
	if (in->form == FORM_MEM_REG && s->calc >= C_BT) {
		/* The bit offset selects the operand-sized unit of memory that holds the bit. */
		unsigned shift = (unsigned)__builtin_ctz(8 * in->size);
		a.off = (a.off + (u64)(sext(other, in->size) >> shift) * in->size) & mask_of(in->addrsize);
	}
	enum emu_status st;
	if ((in->access & ACC_READ) && (st = mem(ctx, &a, &m)))
		return st;
	m &= mask_of(in->size);

	u64 res;
	if (in->form == FORM_REG_MEM) {
		u64 b = in->op == OP_MOVSX ? (u64)sext(m, in->size) : m;
		res = alu(in->op, other, b, in->reg_size, &r->rflags);
		if (s->stores)
			set_reg(r, in, res);
	} else if (in->op == OP_CMPXCHG) {
		u64 acc = r->gpr[RAX] & mask_of(in->size);
		alu(OP_CMP, acc, m, in->size, &r->rflags);
		res = acc == m ? other : m; /* m is written either way */
		if (acc != m)
			put(&r->gpr[RAX], m, in->size);
	} else {
		u64 dst = s->source == B_NEGATE ? 0 : m;
		u64 b = s->source == B_ONE ? 1 : s->source == B_NEGATE ? m : other;
		res = alu(in->op, dst, b, in->size, &r->rflags);
		if (in->op == OP_XCHG || in->op == OP_XADD)
			set_reg(r, in, m);
	}
	if (in->access & ACC_WRITE) {
		a.write = true;
		if ((st = mem(ctx, &a, &res)))
			return st;
	}
	r->rip = next_rip;
	return EMU_OK;
}

enum emu_status emulate(const struct insn *in, struct emu_regs *r, emu_access_fn mem, void *ctx)
{
	u64 ipmask = in->mode == MODE_64 ? ~0ull : in->mode == MODE_32 ? 0xFFFFFFFFull : 0xFFFF;
	u64 next_rip = (r->rip + in->len) & ipmask;
	struct emu_regs work = *r;
	enum emu_status st = in->form == FORM_STRING ? string(in, &work, next_rip, mem, ctx)
						     : one_operand(in, &work, next_rip, mem, ctx);
	if (st == EMU_OK)
		*r = work;
	return st;
}
