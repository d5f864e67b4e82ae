/* libFuzzer: the MMIO instruction emulator with any instruction bytes, code mode, registers and
 * flags, against a model memory of two pages (an MMIO page and a RAM page) that may fault or
 * refuse any access. What it does must stay within what the decoded instruction names. */
#include "vmm/emulate.h"
#include "vmm/vcpu.h"
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include <string.h>

struct model {
	u8 page[2][4096]; /* linear bit 12 picks the page, bits 11:0 the byte */
	u64 seg_base[SEG_NR];
	const struct insn *in;
	u64 gpr[16], next_rip; /* as before the instruction */
	unsigned n, writes, fail_at;
	enum emu_status fail_with;
	u64 wrote_la;
	bool bad;
};

static u64 mask_of(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

/* Where the access must be, computed from the instruction and the registers before it. */
static bool expected_place(struct model *m, const struct emu_access *a)
{
	const struct insn *in = m->in;
	u64 amask = mask_of(in->addrsize);
	if (in->form == FORM_STRING) {
		/* MOVS/LODS read [rSI], CMPS both; STOS/MOVS write, CMPS/SCAS read, ES:[rDI]. */
		bool di = a->write || in->op == OP_SCAS || (in->op == OP_CMPS && m->n == 1);
		if (di)
			return a->seg == SEG_ES && a->off == (m->gpr[RDI] & amask);
		return a->seg == in->seg && a->off == (m->gpr[RSI] & amask);
	}
	if (a->seg != in->seg)
		return false;
	u64 ea = insn_mem_offset(in, m->gpr, m->next_rip);
	if (in->op >= OP_BT && in->op <= OP_BTC && in->form == FORM_MEM_REG) {
		/* Somewhere within the span a bit offset of the operand size can reach. */
		u64 reach = (mask_of(in->size) >> 3) + 1 + in->size;
		return ((a->off - ea + reach) & amask) <= 2 * reach && a->off % in->size == ea % in->size;
	}
	return a->off == ea;
}

static enum emu_status access(void *ctx, const struct emu_access *a, u64 *val)
{
	struct model *m = ctx;
	const struct insn *in = m->in;
	bool rmw = in->access == ACC_RMW && in->form != FORM_STRING;
	if (a->size != in->size || a->addrsize != in->addrsize || a->seg >= SEG_NR || a->rmw != rmw ||
	    a->off > mask_of(in->addrsize) || m->writes || m->n >= 2 || !expected_place(m, a) ||
	    (a->write ? !(in->access & ACC_WRITE) : !(in->access & ACC_READ)))
		m->bad = true;
	if (m->n++ == m->fail_at)
		return m->fail_with;
	u64 la = m->seg_base[a->seg % SEG_NR] + a->off;
	unsigned off = la & 4095;
	if (off + a->size > 4096)
		return EMU_REFUSED;
	u8 *p = &m->page[(la >> 12) & 1][off];
	if (a->write) {
		m->writes++;
		m->wrote_la = la;
		memcpy(p, val, a->size);
	} else {
		*val = 0;
		memcpy(val, p, a->size);
	}
	return EMU_OK;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static struct model m, before;
	const u8 *p = data;
	size_t n = size;
	memset(&m, 0, sizeof(m));
	enum cpu_mode mode = (enum cpu_mode)(take(&p, &n, 1) % 3);
	u64 ctl = take(&p, &n, 1);
	m.fail_at = ctl & 4 ? (unsigned)(ctl & 3) : ~0u;
	m.fail_with = ctl & 8 ? EMU_REFUSED : EMU_FAULT;
	struct emu_regs r;
	r.rflags = take(&p, &n, 4);
	r.rip = take(&p, &n, 8);
	for (int i = 0; i < 16; i++)
		r.gpr[i] = take(&p, &n, 8);
	for (int s = 0; s < SEG_NR; s++)
		m.seg_base[s] = take(&p, &n, 2) << 4;
	u8 code[INSN_MAX_LEN];
	unsigned len = (unsigned)(n < INSN_MAX_LEN ? n : INSN_MAX_LEN);
	memcpy(code, p, len);
	p += len, n -= len;
	memcpy(m.page, p, n < sizeof(m.page) ? n : sizeof(m.page));

	struct insn in;
	if (decode_insn(code, len, mode, &in) != DECODE_OK)
		return 0;
	if (in.len == 0 || in.len > INSN_MAX_LEN || in.len > len)
		abort();
	m.in = &in;
	memcpy(m.gpr, r.gpr, sizeof(m.gpr));
	u64 ipmask = mode == MODE_64 ? ~0ull : mode == MODE_32 ? 0xFFFFFFFFull : 0xFFFF;
	m.next_rip = (r.rip + in.len) & ipmask;
	before = m;
	struct emu_regs old = r;
	enum emu_status st = emulate(&in, &r, access, &m);
	if (m.bad)
		abort();
	if (st != EMU_OK) {
		/* Nothing changed in the registers; the write, if any, was the failed access. */
		if (memcmp(&r, &old, sizeof(r)) != 0 || (st != m.fail_with && st != EMU_REFUSED))
			abort();
		return 0;
	}
	u64 amask = mask_of(in.addrsize);
	bool rerun = in.rep && r.rip == old.rip && (r.gpr[RCX] & amask) != 0;
	if (r.rip != m.next_rip && !rerun)
		abort();
	if ((r.rflags ^ old.rflags) & ~RFLAGS_ARITH)
		abort();
	if ((in.op == OP_MOV || in.op == OP_MOVZX || in.op == OP_MOVSX || in.op == OP_XCHG || in.op == OP_NOT ||
		(in.form == FORM_STRING && in.op != OP_CMPS && in.op != OP_SCAS)) &&
	    r.rflags != old.rflags)
		abort();
	/* Only the registers the instruction names. */
	unsigned may = 0;
	if (in.form == FORM_REG_MEM || in.op == OP_XCHG || in.op == OP_XADD)
		may |= 1u << in.reg;
	if (in.op == OP_CMPXCHG)
		may |= 1u << RAX;
	if (in.form == FORM_STRING)
		may |= 1u << RSI | 1u << RDI | 1u << RCX | 1u << RAX;
	for (int i = 0; i < 16; i++)
		if (r.gpr[i] != old.gpr[i] && !(may & (1u << i)))
			abort();
	/* Only the bytes of the one write. */
	for (unsigned pg = 0; pg < 2; pg++)
		for (unsigned b = 0; b < 4096; b++)
			if (m.page[pg][b] != before.page[pg][b]) {
				u64 w = m.wrote_la;
				if (!m.writes || ((w >> 12) & 1) != pg || b < (w & 4095) || b >= (w & 4095) + in.size)
					abort();
			}
	return 0;
}
