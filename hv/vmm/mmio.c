/* MMIO trap pages and the emulation of the instruction that touched one: see mmio.h. */
#include "vmm/mmio.h"
#include "vmm/vcpu.h"
#include "vmm/gwalk.h"
#include "vmm/emulate.h"
#include "vmm/cpus.h"
#include "mm/stage2.h"
#include "core/log.h"
#include "core/x86.h"
#include "core/spinlock.h"
#include "core/string.h"

/* One entry of the trap table. Every field is read and written with atomics: the lookup reads
 * them without the lock while a change may be storing them (seq tells it to retry). */
struct trap {
	u64 base, end;      /* [base, end) is trapped; base == end: a free entry */
	u64 gone, gone_end; /* [gone, gone_end): pages a move or removal is releasing */
	u32 access;         /* enum pt_access */
	mmio_handler fn;
	void *ctx;
};

static struct trap traps[MMIO_TRAPS_MAX];
static u32 seq;                    /* odd while a change stores an entry; the lookup retries when it moved */
static struct spinlock table_lock; /* one change at a time */
static u32 log_budget = 32;

#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

#define CR4_LA57 (1ull << 12)

/* ---- Changes (under table_lock). ---- */

/* Store entry t: the lookup sees the old or the new fields, never a mix. */
static void publish(struct trap *t, struct trap n)
{
	u32 s = LD(seq);
	ST(seq, s + 1);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	ST(t->base, n.base), ST(t->end, n.end), ST(t->gone, n.gone), ST(t->gone_end, n.gone_end);
	ST(t->access, n.access), ST(t->fn, n.fn), ST(t->ctx, n.ctx);
	__atomic_store_n(&seq, s + 2, __ATOMIC_RELEASE);
}

static bool used(const struct trap *t)
{
	return t->base != t->end;
}

static bool valid_range(u64 gpa, u64 len, enum pt_access access)
{
	return !((gpa | len) & 4095) && len != 0 && gpa + len > gpa && access != PT_RW;
}

/* Another entry than `self` traps a page of [base, end). */
static bool taken(u64 base, u64 end, const struct trap *self)
{
	for (unsigned i = 0; i < MMIO_TRAPS_MAX; i++) {
		const struct trap *t = &traps[i];
		if (t != self && used(t) && base < t->end && t->base < end)
			return true;
	}
	return false;
}

static struct trap *free_entry(void)
{
	for (unsigned i = 0; i < MMIO_TRAPS_MAX; i++)
		if (!used(&traps[i]))
			return &traps[i];
	return NULL;
}

/* Map [base, end) again, but the pages of [keep, keep_end). */
static void untrap(u64 base, u64 end, u64 keep, u64 keep_end)
{
	for (u64 p = base; p < end; p += 4096)
		if (p < keep || p >= keep_end)
			stage2_trap(p, PT_RW);
}

/* Trap [base, end) for access; on failure map again the pages it trapped (but those of
 * [keep, keep_end), which were trapped before) and return false. */
static bool trap(u64 base, u64 end, enum pt_access access, u64 keep, u64 keep_end)
{
	for (u64 p = base; p < end; p += 4096)
		if (!stage2_trap(p, access)) {
			untrap(base, p, keep, keep_end);
			return false;
		}
	return true;
}

/* A new entry: published before its pages fault, so every fault finds it. */
static struct trap *add_locked(u64 gpa, u64 len, enum pt_access access, mmio_handler fn, void *ctx)
{
	struct trap *t = free_entry();
	if (!t || !fn || !valid_range(gpa, len, access) || taken(gpa, gpa + len, NULL))
		return NULL;
	publish(t, (struct trap){ gpa, gpa + len, 0, 0, access, fn, ctx });
	if (trap(gpa, gpa + len, access, 0, 0))
		return t;
	publish(t, (struct trap){ 0 });
	return NULL;
}

bool mmio_trap_add(u64 gpa, u64 len, enum pt_access access, mmio_handler fn, void *ctx)
{
	spin_lock(&table_lock);
	bool ok = add_locked(gpa, len, access, fn, ctx) != NULL;
	spin_unlock(&table_lock);
	return ok;
}

bool mmio_trap_page(u64 gpa, enum pt_access access, mmio_handler fn, void *ctx)
{
	if ((gpa & 4095) || access == PT_RW)
		return false;
	spin_lock(&table_lock);
	struct trap *t = NULL;
	for (unsigned i = 0; i < MMIO_TRAPS_MAX && !t; i++)
		if (used(&traps[i]) && gpa >= traps[i].base && gpa < traps[i].end)
			t = &traps[i];
	bool ok;
	if (!t) {
		ok = add_locked(gpa, 4096, access, fn, ctx) != NULL;
	} else {
		ok = t->fn == fn && t->ctx == ctx && stage2_trap(gpa, access);
		if (ok && t->end - t->base == 4096 && t->access != access) {
			struct trap n = *t;
			n.access = access; /* a page of its own: reads trapped now too, or again not */
			publish(t, n);
		}
	}
	spin_unlock(&table_lock);
	return ok;
}

int mmio_region_add(u64 gpa, u64 len, enum pt_access access, mmio_handler fn, void *ctx)
{
	spin_lock(&table_lock);
	struct trap *t = add_locked(gpa, len, access, fn, ctx);
	if (t)
		cpus_flush_stage2();
	spin_unlock(&table_lock);
	return t ? (int)(t - traps) : -1;
}

static struct trap *entry(int h)
{
	return h >= 0 && h < MMIO_TRAPS_MAX && used(&traps[h]) ? &traps[h] : NULL;
}

/*
 * The new pages are trapped and the entry names them before the old ones are released; while
 * the old ones are released and flushed, a fault there runs the instruction again.
 */
bool mmio_region_move(int h, u64 gpa)
{
	spin_lock(&table_lock);
	struct trap *t = entry(h), o = t ? *t : (struct trap){ 0 };
	u64 len = o.end - o.base;
	bool ok = t && (gpa == o.base || (valid_range(gpa, len, o.access) && !taken(gpa, gpa + len, t)));
	if (ok && gpa != o.base) {
		publish(t, (struct trap){ gpa, gpa + len, o.base, o.end, o.access, o.fn, o.ctx });
		ok = trap(gpa, gpa + len, o.access, o.base, o.end);
		if (ok) {
			untrap(o.base, o.end, gpa, gpa + len);
			cpus_flush_stage2();
		}
		publish(t, ok ? (struct trap){ gpa, gpa + len, 0, 0, o.access, o.fn, o.ctx } : o);
	}
	spin_unlock(&table_lock);
	return ok;
}

void mmio_region_remove(int h)
{
	spin_lock(&table_lock);
	struct trap *t = entry(h);
	if (t) {
		u64 base = t->base, end = t->end;
		publish(t, (struct trap){ .gone = base, .gone_end = end });
		untrap(base, end, 0, 0);
		cpus_flush_stage2();
		publish(t, (struct trap){ 0 });
	}
	spin_unlock(&table_lock);
}

/* ---- The lookup (no lock). ---- */

enum hit {
	MISS,
	HIT,  /* *out is the entry that traps the page */
	GONE, /* a move or removal is releasing the page: run the instruction again */
};

static enum hit find(u64 gpa, struct trap *out)
{
	for (;;) {
		u32 s = __atomic_load_n(&seq, __ATOMIC_ACQUIRE);
		if (s & 1) {
			cpu_relax();
			continue;
		}
		enum hit r = MISS;
		for (unsigned i = 0; i < MMIO_TRAPS_MAX && r != HIT; i++) {
			struct trap *t = &traps[i];
			if (gpa >= LD(t->base) && gpa < LD(t->end)) {
				*out = (struct trap){ LD(t->base), LD(t->end), 0, 0, LD(t->access), LD(t->fn),
					LD(t->ctx) };
				r = HIT;
			} else if (gpa >= LD(t->gone) && gpa < LD(t->gone_end)) {
				r = GONE;
			}
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&seq, __ATOMIC_RELAXED) == s)
			return r;
	}
}

static bool trapped(u64 gpa)
{
	struct trap t;
	return find(gpa, &t) != MISS;
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

/* A read of a write-only (PT_RO) trap page, which the guest reads without an exit: from the
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
	struct trap tr;
	enum hit hit = find(gpa, &tr);
	const struct trap *t = hit == HIT ? &tr : NULL;
	if (hit == GONE || (!t && !c->matched && (gpa >> 12) == (v->exit.npf.gpa >> 12)))
		return EMU_FAULT; /* another CPU changed the trap meanwhile: nothing done, run it again */
	if (across && (t || trapped(gpa2)))
		return refused(c, "access across a trap page's boundary");

	/* The first access the nested page tables stop must be the fault, and come before any write. */
	if (t && (a->write || t->access == PT_NONE) && !c->matched) {
		bool write_fault = v->exit.npf.access == NPF_WRITE;
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
		else if (t->access == PT_RO)
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
	struct trap t;
	switch (find(v->exit.npf.gpa, &t)) {
	case GONE:
		return true; /* a move or removal releases the page: run it again after the change */
	case MISS:
		/* Taken before a change released the page (another CPU's): the tables allow the access
		 * now; this CPU's nested TLB may still hold the old translation. Run it again. */
		if (!stage2_allows(v->exit.npf.gpa, v->exit.npf.access == NPF_WRITE))
			return false;
		__atomic_store_n(&v->flush_stage2, true, __ATOMIC_RELAXED);
		return true;
	case HIT:
		break;
	}
	u8 b[INSN_MAX_LEN] = { 0 };
	unsigned got = 0;
	if (v->exit.npf.in_walk) {
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
