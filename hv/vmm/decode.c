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
		case 0x66:
			osz = true;
			break;
		case 0x67:
			asz = true;
			break;
		case 0x26:
			p->seg = SEG_ES;
			break;
		case 0x2E:
			p->seg = SEG_CS;
			break;
		case 0x36:
			p->seg = SEG_SS;
			break;
		case 0x3E:
			p->seg = SEG_DS;
			break;
		case 0x64:
			p->seg = SEG_FS;
			break;
		case 0x65:
			p->seg = SEG_GS;
			break;
		case 0xF0:
			p->lock = true;
			break;
		case 0xF2:
			p->repne = true, p->rep = false;
			break;
		case 0xF3:
			p->rep = true, p->repne = false;
			break;
		default:
			if (mode == MODE_64 && (x & 0xF0) == 0x40) {
				p->rex = x; /* counts only if the opcode follows it directly */
				continue;
			}
			goto done;
		}
		p->rex = 0; /* a legacy prefix after REX cancels it */
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
		return DECODE_UNSUPPORTED; /* a register operand: no memory access */
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

/* How a row gives the sizes of m and of the register operand. */
enum size_rule {
	SZ_B, /* byte */
	SZ_W, /* word */
	SZ_V, /* the operand size: 2, 4 or 8 */
	SZ_Y, /* the operand size, 4 or 8 only (MOVNTI) */
	SZ_D, /* MOVSXD's source: 4 with REX.W, else the operand size */
};

enum addressing { AM_MODRM, AM_MOFFS, AM_STRING };
enum imm_rule { IMM_NONE, IMM_B, IMM_Z }; /* imm8; imm16 (operand size 2) or imm32 */

/* Pseudo-operations of the ALU rows: the operation is in opcode bits 5:3 or in ModRM.reg. */
#define ALU_OPC 0xF0
#define ALU_EXT 0xF1
#define ANY (-1)
#define TWO 0x100 /* the opcode follows 0F */

/* One row per form (see decode.h): opcode, the opcode bits that must match, ModRM.reg of a group
 * opcode, the operation, the memory operand's place and access, the sizes of m and of the
 * register operand, the immediate, how m is addressed, and the code it exists in. */
static const struct row {
	u16 opcode;
	u8 mask;
	int8_t ext;
	u8 op, form, access, msize, rsize, imm, am;
	bool only64;
} rows[] = {
	{ 0x00, 0xC7, ANY, ALU_OPC, FORM_MEM_REG, ACC_RMW, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ 0x01, 0xC7, ANY, ALU_OPC, FORM_MEM_REG, ACC_RMW, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ 0x02, 0xC7, ANY, ALU_OPC, FORM_REG_MEM, ACC_READ, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ 0x03, 0xC7, ANY, ALU_OPC, FORM_REG_MEM, ACC_READ, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ 0x63, 0xFF, ANY, OP_MOVSX, FORM_REG_MEM, ACC_READ, SZ_D, SZ_V, IMM_NONE, AM_MODRM, 1 },
	{ 0x80, 0xFF, ANY, ALU_EXT, FORM_MEM_IMM, ACC_RMW, SZ_B, SZ_B, IMM_B, AM_MODRM, 0 },
	{ 0x81, 0xFF, ANY, ALU_EXT, FORM_MEM_IMM, ACC_RMW, SZ_V, SZ_V, IMM_Z, AM_MODRM, 0 },
	{ 0x83, 0xFF, ANY, ALU_EXT, FORM_MEM_IMM, ACC_RMW, SZ_V, SZ_V, IMM_B, AM_MODRM, 0 },
	{ 0x84, 0xFF, ANY, OP_TEST, FORM_MEM_REG, ACC_READ, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ 0x85, 0xFF, ANY, OP_TEST, FORM_MEM_REG, ACC_READ, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ 0x86, 0xFF, ANY, OP_XCHG, FORM_MEM_REG, ACC_RMW, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ 0x87, 0xFF, ANY, OP_XCHG, FORM_MEM_REG, ACC_RMW, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ 0x88, 0xFF, ANY, OP_MOV, FORM_MEM_REG, ACC_WRITE, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ 0x89, 0xFF, ANY, OP_MOV, FORM_MEM_REG, ACC_WRITE, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ 0x8A, 0xFF, ANY, OP_MOV, FORM_REG_MEM, ACC_READ, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ 0x8B, 0xFF, ANY, OP_MOV, FORM_REG_MEM, ACC_READ, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ 0xA0, 0xFF, ANY, OP_MOV, FORM_REG_MEM, ACC_READ, SZ_B, SZ_B, IMM_NONE, AM_MOFFS, 0 },
	{ 0xA1, 0xFF, ANY, OP_MOV, FORM_REG_MEM, ACC_READ, SZ_V, SZ_V, IMM_NONE, AM_MOFFS, 0 },
	{ 0xA2, 0xFF, ANY, OP_MOV, FORM_MEM_REG, ACC_WRITE, SZ_B, SZ_B, IMM_NONE, AM_MOFFS, 0 },
	{ 0xA3, 0xFF, ANY, OP_MOV, FORM_MEM_REG, ACC_WRITE, SZ_V, SZ_V, IMM_NONE, AM_MOFFS, 0 },
	{ 0xA4, 0xFF, ANY, OP_MOVS, FORM_STRING, ACC_READ | ACC_WRITE, SZ_B, SZ_B, IMM_NONE, AM_STRING, 0 },
	{ 0xA5, 0xFF, ANY, OP_MOVS, FORM_STRING, ACC_READ | ACC_WRITE, SZ_V, SZ_V, IMM_NONE, AM_STRING, 0 },
	{ 0xA6, 0xFF, ANY, OP_CMPS, FORM_STRING, ACC_READ, SZ_B, SZ_B, IMM_NONE, AM_STRING, 0 },
	{ 0xA7, 0xFF, ANY, OP_CMPS, FORM_STRING, ACC_READ, SZ_V, SZ_V, IMM_NONE, AM_STRING, 0 },
	{ 0xAA, 0xFF, ANY, OP_STOS, FORM_STRING, ACC_WRITE, SZ_B, SZ_B, IMM_NONE, AM_STRING, 0 },
	{ 0xAB, 0xFF, ANY, OP_STOS, FORM_STRING, ACC_WRITE, SZ_V, SZ_V, IMM_NONE, AM_STRING, 0 },
	{ 0xAC, 0xFF, ANY, OP_LODS, FORM_STRING, ACC_READ, SZ_B, SZ_B, IMM_NONE, AM_STRING, 0 },
	{ 0xAD, 0xFF, ANY, OP_LODS, FORM_STRING, ACC_READ, SZ_V, SZ_V, IMM_NONE, AM_STRING, 0 },
	{ 0xAE, 0xFF, ANY, OP_SCAS, FORM_STRING, ACC_READ, SZ_B, SZ_B, IMM_NONE, AM_STRING, 0 },
	{ 0xAF, 0xFF, ANY, OP_SCAS, FORM_STRING, ACC_READ, SZ_V, SZ_V, IMM_NONE, AM_STRING, 0 },
	{ 0xC6, 0xFF, 0, OP_MOV, FORM_MEM_IMM, ACC_WRITE, SZ_B, SZ_B, IMM_B, AM_MODRM, 0 },
	{ 0xC7, 0xFF, 0, OP_MOV, FORM_MEM_IMM, ACC_WRITE, SZ_V, SZ_V, IMM_Z, AM_MODRM, 0 },
	{ 0xF6, 0xFF, 0, OP_TEST, FORM_MEM_IMM, ACC_READ, SZ_B, SZ_B, IMM_B, AM_MODRM, 0 },
	{ 0xF7, 0xFF, 0, OP_TEST, FORM_MEM_IMM, ACC_READ, SZ_V, SZ_V, IMM_Z, AM_MODRM, 0 },
	{ 0xF6, 0xFF, 2, OP_NOT, FORM_MEM, ACC_RMW, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ 0xF7, 0xFF, 2, OP_NOT, FORM_MEM, ACC_RMW, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ 0xF6, 0xFF, 3, OP_NEG, FORM_MEM, ACC_RMW, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ 0xF7, 0xFF, 3, OP_NEG, FORM_MEM, ACC_RMW, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ 0xFE, 0xFF, 0, OP_INC, FORM_MEM, ACC_RMW, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ 0xFF, 0xFF, 0, OP_INC, FORM_MEM, ACC_RMW, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ 0xFE, 0xFF, 1, OP_DEC, FORM_MEM, ACC_RMW, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ 0xFF, 0xFF, 1, OP_DEC, FORM_MEM, ACC_RMW, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xA3, 0xFF, ANY, OP_BT, FORM_MEM_REG, ACC_READ, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xAB, 0xFF, ANY, OP_BTS, FORM_MEM_REG, ACC_RMW, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xB3, 0xFF, ANY, OP_BTR, FORM_MEM_REG, ACC_RMW, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xBB, 0xFF, ANY, OP_BTC, FORM_MEM_REG, ACC_RMW, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xBA, 0xFF, 4, OP_BT, FORM_MEM_IMM, ACC_READ, SZ_V, SZ_V, IMM_B, AM_MODRM, 0 },
	{ TWO | 0xBA, 0xFF, 5, OP_BTS, FORM_MEM_IMM, ACC_RMW, SZ_V, SZ_V, IMM_B, AM_MODRM, 0 },
	{ TWO | 0xBA, 0xFF, 6, OP_BTR, FORM_MEM_IMM, ACC_RMW, SZ_V, SZ_V, IMM_B, AM_MODRM, 0 },
	{ TWO | 0xBA, 0xFF, 7, OP_BTC, FORM_MEM_IMM, ACC_RMW, SZ_V, SZ_V, IMM_B, AM_MODRM, 0 },
	{ TWO | 0xB0, 0xFF, ANY, OP_CMPXCHG, FORM_MEM_REG, ACC_RMW, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xB1, 0xFF, ANY, OP_CMPXCHG, FORM_MEM_REG, ACC_RMW, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xB6, 0xFF, ANY, OP_MOVZX, FORM_REG_MEM, ACC_READ, SZ_B, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xB7, 0xFF, ANY, OP_MOVZX, FORM_REG_MEM, ACC_READ, SZ_W, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xBE, 0xFF, ANY, OP_MOVSX, FORM_REG_MEM, ACC_READ, SZ_B, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xBF, 0xFF, ANY, OP_MOVSX, FORM_REG_MEM, ACC_READ, SZ_W, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xC0, 0xFF, ANY, OP_XADD, FORM_MEM_REG, ACC_RMW, SZ_B, SZ_B, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xC1, 0xFF, ANY, OP_XADD, FORM_MEM_REG, ACC_RMW, SZ_V, SZ_V, IMM_NONE, AM_MODRM, 0 },
	{ TWO | 0xC3, 0xFF, ANY, OP_MOV, FORM_MEM_REG, ACC_WRITE, SZ_Y, SZ_Y, IMM_NONE, AM_MODRM, 0 },
};

/* Bytes of an operand by its rule; 0 when the form does not exist at this operand size. */
static u8 size_of(enum size_rule rule, const struct prefixes *p)
{
	switch (rule) {
	case SZ_B:
		return 1;
	case SZ_W:
		return 2;
	case SZ_Y:
		return p->opsize == 2 ? 0 : p->opsize;
	case SZ_D:
		return p->opsize == 8 ? 4 : p->opsize;
	default:
		return p->opsize;
	}
}

/* The row of opcode op (TWO | byte after 0F); reads ModRM when the rows of op need it. */
static const struct row *find_row(struct cursor *c, unsigned op, int *modrm)
{
	for (unsigned i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		if ((op & TWO) != (r->opcode & TWO) || ((op ^ r->opcode) & r->mask))
			continue;
		if (r->am == AM_MODRM && *modrm < 0)
			*modrm = next(c);
		if (r->ext == ANY || r->ext == ((*modrm >> 3) & 7))
			return r;
	}
	return NULL;
}

enum decode_error decode_insn(const u8 *b, unsigned n, enum cpu_mode mode, struct insn *in)
{
	struct prefixes p;
	enum decode_error err = decode_prefixes(b, n, mode, &p);
	*in = (struct insn){ 0 };
	if (err)
		return err;
	struct cursor c = { b, n, p.len, false };
	unsigned op = next(&c);
	if (op == 0x0F)
		op = TWO | next(&c);
	int modrm = -1;
	const struct row *r = c.bad ? NULL : find_row(&c, op, &modrm);
	if (c.bad)
		return DECODE_TRUNCATED;
	if (!r || (r->only64 && mode != MODE_64) || ((op & TWO) && (p.rep || p.repne)))
		return DECODE_UNSUPPORTED;

	in->mode = (u8)mode;
	in->op = r->op == ALU_OPC ? (u8)((op >> 3) & 7) : r->op == ALU_EXT ? (u8)((modrm >> 3) & 7) : r->op;
	in->form = r->form;
	in->access = in->op == OP_CMP ? ACC_READ : r->access;
	in->size = size_of(r->msize, &p);
	in->reg_size = size_of(r->rsize, &p);
	if (!in->size)
		return DECODE_UNSUPPORTED;
	in->lock = p.lock || in->op == OP_XCHG;
	if (p.lock && (in->access != ACC_RMW || in->form == FORM_STRING))
		return DECODE_UNSUPPORTED; /* #UD on the processor */
	in->rep = in->form == FORM_STRING && (p.rep || p.repne);
	in->repne = in->rep && p.repne;
	in->addrsize = p.addrsize;

	if (r->am == AM_MODRM) {
		unsigned reg = ((modrm >> 3) & 7) | ((p.rex & 4) << 1);
		err = modrm_mem(&c, (u8)modrm, &p, mode, in);
		if (err)
			return err;
		if (in->form == FORM_MEM_REG || in->form == FORM_REG_MEM) {
			in->reg = (u8)reg;
			/* Without REX, byte registers 4-7 are AH, CH, DH, BH. */
			if (in->reg_size == 1 && !p.rex && reg >= 4) {
				in->reg_high8 = true;
				in->reg = (u8)(reg - 4);
			}
		}
	} else {
		/* rAX and moffs, or the string registers: no ModRM. */
		in->reg = RAX;
		in->base = in->index = -1;
		in->scale = 1;
		in->seg = p.seg >= 0 ? p.seg : SEG_DS;
		if (r->am == AM_MOFFS)
			in->disp = (s64)next_le(&c, p.addrsize);
	}
	if (r->imm != IMM_NONE) {
		unsigned isz = r->imm == IMM_B ? 1 : in->size == 2 ? 2 : 4;
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
