/* Instruction decoding for MMIO and string I/O emulation: see decode.h. */
#include "vmm/decode.h"
#include "vmm/vcpu.h"

struct cursor {
	const u8 *b;
	unsigned n, i;
	bool bad;
};

static u8 next(struct cursor *c)
{
	if (c->i >= c->n || c->i >= INSN_MAX_LEN) {
		c->bad = true;
		return 0;
	}
	return c->b[c->i++];
}

static u64 next_le(struct cursor *c, unsigned bytes)
{
	u64 v = 0;
	for (unsigned k = 0; k < bytes; k++)
		v |= (u64)next(c) << (8 * k);
	return v;
}

static s64 sext(u64 v, unsigned bytes)
{
	unsigned sh = 64 - 8 * bytes;
	return (s64)(v << sh) >> sh;
}

enum decode_error decode_prefixes(const u8 *b, unsigned n, enum cpu_mode mode, struct prefixes *p)
{
	bool osz = false, asz = false;
	unsigned i = 0;
	*p = (struct prefixes){ .seg = -1 };
	for (;; i++) {
		if (i >= n || i >= INSN_MAX_LEN)
			return DECODE_TRUNCATED;
		u8 x = b[i];
		switch (x) {
		case 0x66: osz = true; break;
		case 0x67: asz = true; break;
		case 0x26: p->seg = SEG_ES; break;
		case 0x2E: p->seg = SEG_CS; break;
		case 0x36: p->seg = SEG_SS; break;
		case 0x3E: p->seg = SEG_DS; break;
		case 0x64: p->seg = SEG_FS; break;
		case 0x65: p->seg = SEG_GS; break;
		case 0xF0: p->lock = true; break;
		case 0xF2: p->repne = true, p->rep = false; break;
		case 0xF3: p->rep = true, p->repne = false; break;
		default:
			if (mode == MODE_64 && (x & 0xF0) == 0x40) {
				p->rex = x;     /* counts only if the opcode follows it directly */
				continue;
			}
			goto done;
		}
		p->rex = 0;             /* a legacy prefix after REX cancels it */
	}
done:
	p->len = (u8)i;
	switch (mode) {
	case MODE_16:
		p->opsize = osz ? 4 : 2;
		p->addrsize = asz ? 4 : 2;
		break;
	case MODE_32:
		p->opsize = osz ? 2 : 4;
		p->addrsize = asz ? 2 : 4;
		break;
	default:
		p->opsize = (p->rex & 8) ? 8 : osz ? 2 : 4;
		p->addrsize = asz ? 4 : 8;
		break;
	}
	return DECODE_OK;
}

/* ModRM (already read) and what follows it: SIB, displacement. */
static enum decode_error modrm_mem(struct cursor *c, u8 modrm, const struct prefixes *p, enum cpu_mode mode,
				   struct insn *in)
{
	unsigned mod = modrm >> 6, rm = modrm & 7;
	in->base = in->index = -1;
	in->scale = 1;
	in->addrsize = p->addrsize;
	int def_seg = SEG_DS;
	if (mod == 3)
		return DECODE_UNSUPPORTED;      /* a register operand: no memory access */
	if (p->addrsize == 2) {
		static const int8_t base16[8] = { RBX, RBX, RBP, RBP, RSI, RDI, RBP, RBX };
		static const int8_t index16[8] = { RSI, RDI, RSI, RDI, -1, -1, -1, -1 };
		if (mod == 0 && rm == 6) {
			in->disp = sext(next_le(c, 2), 2);
		} else {
			in->base = base16[rm];
			in->index = index16[rm];
			if (in->base == RBP)
				def_seg = SEG_SS;
			if (mod == 1)
				in->disp = sext(next(c), 1);
			else if (mod == 2)
				in->disp = sext(next_le(c, 2), 2);
		}
	} else {
		unsigned rex_b = (p->rex & 1) << 3, rex_x = (p->rex & 2) << 2;
		if (rm == 4) {
			u8 sib = next(c);
			unsigned idx = ((sib >> 3) & 7) | rex_x, base = sib & 7;
			in->scale = (u8)(1u << (sib >> 6));
			if (idx != 4)
				in->index = (int8_t)idx;
			if (base == 5 && mod == 0) {
				in->disp = sext(next_le(c, 4), 4);
			} else {
				in->base = (int8_t)(base | rex_b);
			}
		} else if (rm == 5 && mod == 0) {
			in->disp = sext(next_le(c, 4), 4);
			in->rip_rel = mode == MODE_64;
		} else {
			in->base = (int8_t)(rm | rex_b);
		}
		if (in->base == RSP || in->base == RBP)
			def_seg = SEG_SS;
		if (mod == 1)
			in->disp = sext(next(c), 1);
		else if (mod == 2)
			in->disp = sext(next_le(c, 4), 4);
	}
	in->seg = p->seg >= 0 ? p->seg : (int8_t)def_seg;
	return DECODE_OK;
}

enum decode_error decode_insn(const u8 *b, unsigned n, enum cpu_mode mode, struct insn *in)
{
	struct prefixes p;
	enum decode_error err = decode_prefixes(b, n, mode, &p);
	*in = (struct insn){ 0 };
	if (err)
		return err;
	if (p.lock || p.rep || p.repne)
		return DECODE_UNSUPPORTED;
	struct cursor c = { b, n, p.len, false };
	u8 op = next(&c);
	bool two = false;
	if (op == 0x0F) {
		two = true;
		op = next(&c);
	}
	if (c.bad)
		return DECODE_TRUNCATED;
	if (two ? op != 0xB6 && op != 0xB7 : op != 0x88 && op != 0x89 && op != 0x8A && op != 0x8B && op != 0xC6 && op != 0xC7)
		return DECODE_UNSUPPORTED;
	u8 modrm = next(&c);
	if (c.bad)
		return DECODE_TRUNCATED;
	unsigned reg = ((modrm >> 3) & 7) | ((p.rex & 4) << 1);
	in->reg = (u8)reg;
	if (!two) {
		switch (op) {
		case 0x88: in->kind = INSN_STORE; in->size = 1; break;
		case 0x89: in->kind = INSN_STORE; in->size = p.opsize; break;
		case 0x8A: in->kind = INSN_LOAD; in->size = in->reg_size = 1; break;
		case 0x8B: in->kind = INSN_LOAD; in->size = in->reg_size = p.opsize; break;
		case 0xC6:
		case 0xC7:
			if (reg & 7)
				return DECODE_UNSUPPORTED;
			in->kind = INSN_STORE;
			in->size = op == 0xC6 ? 1 : p.opsize;
			in->has_imm = true;
			in->reg = 0;
			break;
		default:
			return DECODE_UNSUPPORTED;
		}
		/* Without REX, byte registers 4-7 are AH, CH, DH, BH. */
		if (in->size == 1 && !in->has_imm && !p.rex && reg >= 4) {
			in->reg_high8 = true;
			in->reg = (u8)(reg - 4);
		}
	} else {
		if (op != 0xB6 && op != 0xB7)
			return DECODE_UNSUPPORTED;
		in->kind = INSN_LOAD;
		in->size = op == 0xB6 ? 1 : 2;
		in->reg_size = p.opsize;
	}
	err = modrm_mem(&c, modrm, &p, mode, in);
	if (err)
		return err;
	if (in->has_imm) {
		unsigned isz = in->size == 1 ? 1 : in->size == 2 ? 2 : 4;
		in->imm = (u64)sext(next_le(&c, isz), isz);
		if (in->size < 8)
			in->imm &= (1ull << (8 * in->size)) - 1;
	}
	if (c.bad)
		return DECODE_TRUNCATED;
	in->len = (u8)c.i;
	return DECODE_OK;
}

u64 insn_mem_offset(const struct insn *in, const u64 gpr[16], u64 rip_next)
{
	u64 ea = (u64)in->disp;
	if (in->rip_rel)
		ea += rip_next;
	if (in->base >= 0)
		ea += gpr[in->base];
	if (in->index >= 0)
		ea += gpr[in->index] * in->scale;
	if (in->addrsize == 2)
		ea &= 0xFFFF;
	else if (in->addrsize == 4)
		ea &= 0xFFFFFFFFull;
	return ea;
}
