/* MMIO trap pages and the emulation of the instruction that touched one: see mmio.h. */
#include "vmm/mmio.h"
#include "vmm/vcpu.h"
#include "vmm/gwalk.h"
#include "vmm/emulate.h"
#include "mm/npt.h"
#include "core/log.h"
#include "core/spinlock.h"
#include "core/string.h"

struct trap {
	u64 base, end;
	enum npt_access access;
	mmio_handler fn;
	void *ctx;
};

static struct trap traps[MMIO_TRAPS_MAX];
static unsigned ntraps;
static u32 log_budget = 32;

#define NPF_WRITE (1ull << 1)
#define NPF_IN_WALK (1ull << 33) /* the fault was on the guest's own page-table access */
#define CR4_LA57 (1ull << 12)

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
	traps[ntraps++] = (struct trap){ gpa, gpa + len, access, fn, ctx };
	return true;
}

static const struct trap *find(u64 gpa);

bool mmio_trap_page(u64 gpa, enum npt_access access, mmio_handler fn, void *ctx)
{
	static struct spinlock lock;
	if ((gpa & 4095) || access == NPT_RW)
		return false;
	spin_lock(&lock);
	struct trap *t = (struct trap *)find(gpa);
	bool ok = t ? t->fn == fn && t->ctx == ctx : ntraps < MMIO_TRAPS_MAX;
	if (ok && t) {
		if (t->end - t->base == 4096)
			t->access = access; /* a page of its own: reads trapped now too, or again not */
	} else if (ok) {
		/* Published whole before the page can fault, so every fault finds it. */
		traps[ntraps] = (struct trap){ gpa, gpa + 4096, access, fn, ctx };
		__atomic_store_n(&ntraps, ntraps + 1, __ATOMIC_RELEASE);
	}
	if (ok && !npt_trap(gpa, access)) {
		if (!t)
			traps[ntraps - 1].end = gpa; /* never mapped: an empty entry */
		ok = false;
	}
	spin_unlock(&lock);
	return ok;
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
	static const char digits[] = "0123456789abcdef";
	char hex[3 * INSN_MAX_LEN + 1];
	unsigned k = 0;
	for (unsigned i = 0; i < n && i < INSN_MAX_LEN; i++) {
		hex[k++] = ' ';
		hex[k++] = digits[b[i] >> 4];
		hex[k++] = digits[b[i] & 15];
	}
	hex[k] = 0;
	if (log_budget_take(&log_budget))
		LOG("mmio: cpu%u: %s at rip=%lx gpa=%lx (bytes%s); #GP\n", v->id, why, v->rip, v->exit.npf.gpa, hex);
	vcpu_inject_gp(v);
}

/* One NPF being emulated. */
struct npf {
	struct vcpu *v;
	struct gw_regs r;
	bool matched;    /* the instruction made the access that faulted */
	const char *why; /* why an access was refused */
};

static enum emu_status refused(struct npf *c, const char *why)
{
	c->why = why;
	return EMU_REFUSED;
}

static enum emu_status segment_fault(struct npf *c, unsigned seg)
{
	if (seg == SEG_SS)
		vcpu_inject_ss(c->v);
	else
		vcpu_inject_gp(c->v);
	return EMU_FAULT;
}

/* A read of a write-only (NPT_RO) trap page, which the guest reads without an exit: from the
 * device, as the guest's own read would be. Only the read half of a read-modify-write or MOVS. */
bool mmio_device_access(u64 gpa, unsigned size, bool write, u64 *val)
{
	volatile void *p = gw_map_rom(gpa, size);
	if (!p)
		return false;
	switch (size) {
	case 1:
		write ? (void)(*(volatile u8 *)p = (u8)*val) : (void)(*val = *(volatile u8 *)p);
		break;
	case 2:
		write ? (void)(*(volatile u16 *)p = (u16)*val) : (void)(*val = *(volatile u16 *)p);
		break;
	case 4:
		write ? (void)(*(volatile u32 *)p = (u32)*val) : (void)(*val = *(volatile u32 *)p);
		break;
	default:
		write ? (void)(*(volatile u64 *)p = *val) : (void)(*val = *(volatile u64 *)p);
	}
	return true;
}

/* One access of the emulated instruction (emulate.h): segment, page tables, then the trap's
 * handler or guest RAM. */
static enum emu_status guest_access(void *ctx, const struct emu_access *a, u64 *val)
{
	struct npf *c = ctx;
	struct vcpu *v = c->v;
	bool l64 = vcpu_code_mode(v) == MODE_64, intent = a->write || a->rmw;
	u64 amask = a->addrsize == 8 ? ~0ull : (1ull << (8 * a->addrsize)) - 1, base;
	if (!gw_seg_fit(v, a->seg, a->off, a->size, false, intent, amask, 1, &base))
		return segment_fault(c, a->seg);
	u64 la = l64 ? base + a->off : (base + a->off) & 0xFFFFFFFFull, last = la + a->size - 1;
	if (l64 && (!gw_canonical(la, v->cr4 & CR4_LA57) || !gw_canonical(last, v->cr4 & CR4_LA57)))
		return segment_fault(c, a->seg);
	if (!l64 && last > 0xFFFFFFFFull)
		return refused(c, "access wraps the linear address space");

	struct gw_fault pf;
	unsigned access = intent ? GW_WRITE : GW_READ;
	bool across = (la & 4095) + a->size > 4096;
	u64 gpa, gpa2 = 0;
	enum gw_result res = gwalk(&c->r, la, access, &gpa, &pf);
	if (res == GW_OK && across)
		res = gwalk(&c->r, (la | 4095) + 1, access, &gpa2, &pf);
	if (res == GW_PAGE_FAULT) {
		vcpu_inject_pf(v, pf.error, pf.addr);
		return EMU_FAULT;
	}
	if (res != GW_OK)
		return refused(c, "guest page table not in RAM");
	const struct trap *t = find(gpa);
	if (across && (t || find(gpa2)))
		return refused(c, "access across a trap page's boundary");

	/* The first access the nested page tables stop must be the fault, and come before any write. */
	if (t && (a->write || t->access == NPT_NONE) && !c->matched) {
		bool write_fault = v->exit.npf.error & NPF_WRITE;
		if ((gpa >> 12) != (v->exit.npf.gpa >> 12) || (!a->rmw && a->write != write_fault))
			return refused(c, "operand is not the faulting address");
		c->matched = true;
	}
	if (a->write && !c->matched)
		return refused(c, "operand is not the faulting address");

	if (t) {
		/* For the guest's data breakpoints (vmm/debug.c): the trapped access. */
		v->access = (struct vm_access){ intent ? ACCESS_WRITE : ACCESS_READ, la, a->size };
		if (a->write)
			t->fn(v, t->ctx, gpa, a->size, true, val);
		else if (t->access == NPT_RO)
			*val = mmio_device_access(gpa, a->size, false, val) ? *val : ~0ull;
		else if (!t->fn(v, t->ctx, gpa, a->size, false, val))
			*val = ~0ull;
		return EMU_OK;
	}
	if (!a->write)
		*val = 0;
	res = gw_copy(&c->r, la, val, a->size, access, a->write, &pf);
	if (res == GW_PAGE_FAULT) {
		vcpu_inject_pf(v, pf.error, pf.addr);
		return EMU_FAULT;
	}
	return res == GW_OK ? EMU_OK : refused(c, "memory that is neither RAM nor a trap page");
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
	if (de == DECODE_TRUNCATED && res == GW_PAGE_FAULT) {
		vcpu_inject_pf(v, pf.error, pf.addr); /* the instruction's next page faults */
		return true;
	}
	if (de != DECODE_OK) {
		refuse(v, de == DECODE_TRUNCATED ? "instruction not in guest RAM" : "instruction not emulated", b, got);
		return true;
	}

	struct npf c = { .v = v, .why = "operand is not the faulting address" };
	gw_regs_of(v, &c.r);
	struct emu_regs r;
	memcpy(r.gpr, v->gpr, sizeof(r.gpr));
	r.rip = v->rip;
	r.rflags = v->rflags;
	enum emu_status st = emulate(&in, &r, guest_access, &c);
	if (st == EMU_OK && !c.matched)
		st = EMU_REFUSED; /* it never touched the faulting page */
	if (st == EMU_OK) {
		memcpy(v->gpr, r.gpr, sizeof(v->gpr));
		v->rip = r.rip;
		v->rflags = r.rflags;
	} else if (st == EMU_REFUSED) {
		refuse(v, c.why, b, got);
	}
	return true;
}
