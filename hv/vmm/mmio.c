/* MMIO trap pages and the emulation of the instruction that touched one: see mmio.h. */
#include "vmm/mmio.h"
#include "vmm/vcpu.h"
#include "vmm/gwalk.h"
#include "vmm/decode.h"
#include "mm/npt.h"
#include "core/log.h"

struct trap {
	u64 base, end;
	mmio_handler fn;
	void *ctx;
};

static struct trap traps[MMIO_TRAPS_MAX];
static unsigned ntraps;
static u32 log_budget = 32;

#define NPF_WRITE (1ull << 1)
#define NPF_IN_WALK (1ull << 33)   /* the fault was on the guest's own page-table access */

bool mmio_trap_add(u64 gpa, u64 len, enum npt_access access, mmio_handler fn, void *ctx)
{
	if (ntraps >= MMIO_TRAPS_MAX || ((gpa | len) & 4095) || len == 0 || gpa + len < gpa || access == NPT_RW)
		return false;
	for (u64 p = gpa; p < gpa + len; p += 4096)
		if (!npt_trap(p, access)) {
			for (u64 q = gpa; q < p; q += 4096)
				npt_trap(q, NPT_RW);
			return false;
		}
	traps[ntraps++] = (struct trap){ gpa, gpa + len, fn, ctx };
	return true;
}

static const struct trap *find(u64 gpa)
{
	for (unsigned i = 0; i < ntraps; i++)
		if (gpa >= traps[i].base && gpa < traps[i].end)
			return &traps[i];
	return NULL;
}

static void refuse(struct vcpu *v, const char *why, const u8 *b, unsigned n)
{
	if (log_budget_take(&log_budget))
		LOG("mmio: cpu%u: %s at rip=%lx gpa=%lx (bytes %02x %02x %02x %02x %02x %02x); #GP\n", v->id, why, v->rip,
		    v->exit.npf.gpa, n > 0 ? b[0] : 0, n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0,
		    n > 4 ? b[4] : 0, n > 5 ? b[5] : 0);
	vcpu_inject_gp(v);
}

static u64 mask_of(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

static void write_reg(struct vcpu *v, const struct insn *in, u64 val)
{
	u64 *r = &v->gpr[in->reg];
	if (in->reg_high8)
		*r = (*r & ~0xFF00ull) | ((val & 0xFF) << 8);
	else if (in->reg_size == 4)
		*r = (u32)val;                      /* a 32-bit register write clears bits 63:32 */
	else if (in->reg_size == 8)
		*r = val;
	else
		*r = (*r & ~mask_of(in->reg_size)) | (val & mask_of(in->reg_size));
}

bool mmio_handle_npf(struct vcpu *v)
{
	const struct trap *t = find(v->exit.npf.gpa);
	if (!t)
		return false;
	u8 b[INSN_MAX_LEN] = { 0 };
	unsigned got = 0;
	if (v->exit.npf.error & NPF_IN_WALK) {
		refuse(v, "guest page table on a trap page", b, 0);
		return true;
	}
	struct gw_fault pf;
	enum gw_result res = gw_fetch_insn(v, b, INSN_MAX_LEN, &got, &pf);
	enum cpu_mode mode = (enum cpu_mode)vcpu_code_mode(v);
	struct insn in;
	enum decode_error de = got ? decode_insn(b, got, mode, &in) : DECODE_TRUNCATED;
	if (de == DECODE_OK && ((in.op != OP_MOV && in.op != OP_MOVZX) || in.form == FORM_STRING))
		de = DECODE_UNSUPPORTED;
	if (de == DECODE_TRUNCATED && res == GW_PAGE_FAULT) {
		vcpu_inject_pf(v, pf.error, pf.addr);          /* the instruction's next page faults */
		return true;
	}
	if (de != DECODE_OK) {
		refuse(v, de == DECODE_TRUNCATED ? "instruction not in guest RAM" : "instruction not emulated", b, got);
		return true;
	}
	bool write = in.access == ACC_WRITE;
	if (write != !!(v->exit.npf.error & NPF_WRITE)) {
		refuse(v, "instruction does not match the fault", b, got);
		return true;
	}

	/* Where the instruction accesses, through the guest's segments and page tables. */
	u64 ipmask = mode == MODE_64 ? ~0ull : mode == MODE_32 ? 0xFFFFFFFFull : 0xFFFF;
	u64 next_rip = (v->rip + in.len) & ipmask;
	u64 off = insn_mem_offset(&in, v->gpr, next_rip);
	u64 base = mode == MODE_64 && in.seg != SEG_FS && in.seg != SEG_GS ? 0 : v->seg[in.seg].base;
	u64 la = base + off;
	if (mode != MODE_64)
		la &= 0xFFFFFFFFull;            /* legacy and compatibility modes: 32-bit linear */
	struct gw_regs r;
	gw_regs_of(v, &r);
	u64 gpa;
	res = gwalk(&r, la, write ? GW_WRITE : GW_READ, &gpa, &pf);
	if (res == GW_PAGE_FAULT) {
		vcpu_inject_pf(v, pf.error, pf.addr);
		return true;
	}
	if (res != GW_OK || (gpa >> 12) != (v->exit.npf.gpa >> 12) || (gpa & 4095) + in.size > 4096) {
		refuse(v, "operand is not the faulting address", b, got);
		return true;
	}

	u64 val;
	if (write) {
		if (in.form == FORM_MEM_IMM)
			val = in.imm;
		else if (in.reg_high8)
			val = (v->gpr[in.reg] >> 8) & 0xFF;
		else
			val = v->gpr[in.reg] & mask_of(in.size);
		t->fn(v, t->ctx, gpa, in.size, true, &val);
	} else {
		val = 0;
		if (!t->fn(v, t->ctx, gpa, in.size, false, &val))
			val = ~0ull;
		write_reg(v, &in, val & mask_of(in.size));
	}
	v->rip = next_rip;
	return true;
}
