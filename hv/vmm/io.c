/*
 * Port I/O exits. Only hooked ports are intercepted (the backend's I/O permission bitmap follows
 * the hook table at run time); every other port passes straight through without an exit.
 *
 * IN/OUT: the hook's handler, once. An access that straddles hooked and unhooked ports (the
 * bitmap intercepts it if any byte is hooked) is split: each hook gets its bytes, the rest goes
 * to the hardware as the guest asked.
 * INS/OUTS: emulated as whole blocks per exit: see string_io() and docs/io.md; one element
 * per exit when the guest single-steps it or has an I/O breakpoint on its port, as the
 * hardware raises #DB after each iteration then.
 */
#include "vmm/io.h"
#include "vmm/gwalk.h"
#include "vmm/decode.h"
#include "vmm/debug.h"
#include "boot/layout.h"
#include "core/log.h"
#include "core/spinlock.h"
#include "core/string.h"
#include "core/x86.h"
#ifndef HOST_TEST
#include "core/pio.h"
#endif

struct io_hook {
	bool used;
	u16 base, count;
	io_handler fn;
	io_str_handler str;
	void *ctx;
};

static struct io_hook hooks[IO_HOOKS_MAX];
static struct spinlock hooks_lock;
static io_intercept_fn intercept;

static u32 ratelimit_budget = 32;


/* ---- The hook table. ---- */

static bool overlaps(u32 base, u32 count, int except)
{
	for (int i = 0; i < IO_HOOKS_MAX; i++)
		if (i != except && hooks[i].used && base < (u32)hooks[i].base + hooks[i].count &&
		    hooks[i].base < base + count)
			return true;
	return false;
}

int io_hook_add(u16 base, u16 count, io_handler fn, io_str_handler str, void *ctx)
{
	if (count == 0 || (u32)base + count > 0x10000 || !fn)
		return -1;
	spin_lock(&hooks_lock);
	int h = -1;
	if (!overlaps(base, count, -1))
		for (int i = 0; i < IO_HOOKS_MAX && h < 0; i++)
			if (!hooks[i].used)
				h = i;
	if (h >= 0) {
		hooks[h] = (struct io_hook){ true, base, count, fn, str, ctx };
		if (intercept)
			intercept(base, count, true);
	}
	spin_unlock(&hooks_lock);
	return h;
}

bool io_hook_move(int handle, u16 new_base)
{
	if (handle < 0 || handle >= IO_HOOKS_MAX)
		return false;
	spin_lock(&hooks_lock);
	struct io_hook *h = &hooks[handle];
	bool ok = h->used && (u32)new_base + h->count <= 0x10000 && !overlaps(new_base, h->count, handle);
	if (ok && new_base != h->base) {
		/* Intercept the new ports before releasing the old ones: never a moment unhooked. */
		u16 old = h->base;
		if (intercept)
			intercept(new_base, h->count, true);
		h->base = new_base;
		if (intercept)
			for (u32 p = old; p < (u32)old + h->count; p++)
				if (p < new_base || p >= (u32)new_base + h->count)
					intercept((u16)p, 1, false);
	}
	spin_unlock(&hooks_lock);
	return ok;
}

void io_hook_remove(int handle)
{
	if (handle < 0 || handle >= IO_HOOKS_MAX)
		return;
	spin_lock(&hooks_lock);
	if (hooks[handle].used) {
		hooks[handle].used = false;
		if (intercept)
			intercept(hooks[handle].base, hooks[handle].count, false);
	}
	spin_unlock(&hooks_lock);
}

bool io_hook_register(u16 base, u16 count, io_handler fn, void *ctx)
{
	return io_hook_add(base, count, fn, NULL, ctx) >= 0;
}

void io_set_intercept(io_intercept_fn fn)
{
	spin_lock(&hooks_lock);
	intercept = fn;
	for (int i = 0; i < IO_HOOKS_MAX; i++)
		if (fn && hooks[i].used)
			fn(hooks[i].base, hooks[i].count, true);
	spin_unlock(&hooks_lock);
}

/* A copy of the hook that covers port (handlers run without the lock: they may move hooks). */
static bool find_hook(u32 port, struct io_hook *out)
{
	bool found = false;
	spin_lock(&hooks_lock);
	for (int i = 0; i < IO_HOOKS_MAX && !found; i++)
		if (hooks[i].used && port >= hooks[i].base && port < (u32)hooks[i].base + hooks[i].count) {
			*out = hooks[i];
			found = true;
		}
	spin_unlock(&hooks_lock);
	return found;
}

/* First hooked port in [from, to), or `to`. */
static u32 next_hooked(u32 from, u32 to)
{
	u32 best = to;
	spin_lock(&hooks_lock);
	for (int i = 0; i < IO_HOOKS_MAX; i++)
		if (hooks[i].used && (u32)hooks[i].base + hooks[i].count > from && hooks[i].base < best)
			best = hooks[i].base < from ? from : hooks[i].base;
	spin_unlock(&hooks_lock);
	return best;
}

u32 io_absent(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	(void)ctx, (void)port, (void)size, (void)in, (void)val;
	return 0xFFFFFFFF;
}

#ifndef HOST_TEST
u32 io_port_hw(u16 port, unsigned size, bool in, u32 val)
{
	if (in)
		return size == 1 ? inb(port) : size == 2 ? inw(port) : inl(port);
	if (size == 1)
		outb(port, (u8)val);
	else if (size == 2)
		outw(port, (u16)val);
	else
		outl(port, val);
	return 0;
}
#endif

static u32 size_mask(unsigned size)
{
	return size >= 4 ? 0xFFFFFFFFu : (1u << (size * 8)) - 1;
}

/*
 * One access of size 1, 2 or 4 at port: to the hook that covers all of it, or split into
 * pieces that each go to their hook or to the hardware. Ports past 0xFFFF read as all ones.
 */
static u32 port_access(u32 port, unsigned size, bool in, u32 val)
{
	struct io_hook h;
	if (find_hook(port, &h) && port + size <= (u32)h.base + h.count)
		return h.fn(h.ctx, (u16)port, size, in, val) & size_mask(size);
	u32 result = 0;
	for (unsigned i = 0; i < size;) {
		u32 p = port + i, run;
		bool hooked = find_hook(p, &h);
		if (hooked)
			run = (u32)h.base + h.count - p;
		else
			run = next_hooked(p, port + size) - p;
		if (run > size - i)
			run = size - i;
		unsigned s = run >= 4 ? 4 : run >= 2 ? 2 : 1;
		u32 v = (val >> (8 * i)) & size_mask(s), r;
		if (hooked)
			r = h.fn(h.ctx, (u16)p, s, in, v);
		else if (p <= 0xFFFF && p + s <= 0x10000)
			r = io_port_hw((u16)p, s, in, v);
		else
			r = 0xFFFFFFFF;
		result |= (r & size_mask(s)) << (8 * i);
		i += s;
	}
	return result;
}

/* ---- String I/O. ---- */

static u8 iobuf[MAX_CPUS][IO_STR_MAX_BYTES] __aligned(64);

#define RFLAGS_DF (1ull << 10)
#define RFLAGS_VM (1ull << 17)
#define CHUNKS_MAX (IO_STR_MAX_BYTES / 4096 + 2)

/* The guest memory of one block: pieces in the order the instruction touches them. */
struct block {
	unsigned n;         /* pieces */
	u8 *hp[CHUNKS_MAX]; /* host pointer to the piece's lowest byte */
	unsigned len[CHUNKS_MAX];
	bool down; /* DF=1: bytes are touched from the top down */
};

/* Host address of the byte at distance t (in touch order) from the block's first byte. */
static u8 *byte_at(const struct block *b, unsigned t)
{
	for (unsigned j = 0; j < b->n; t -= b->len[j], j++)
		if (t < b->len[j])
			return b->down ? b->hp[j] + (b->len[j] - 1 - t) : b->hp[j] + t;
	return NULL; /* not reached: callers stay within the block */
}

/*
 * Move n elements between the block and buf (buf in element order). DF=0: the block's bytes
 * in touch order are the elements' bytes. DF=1: element i's bytes are at distances
 * (i+1)*size-1 down to i*size, lowest address first.
 */
static void block_copy(const struct block *b, u8 *buf, unsigned n, unsigned size, bool to_guest)
{
	if (!b->down) {
		unsigned total = n * size;
		for (unsigned j = 0, t = 0; j < b->n && t < total; t += b->len[j], j++) {
			unsigned c = b->len[j] < total - t ? b->len[j] : total - t;
			if (to_guest)
				memcpy(b->hp[j], buf + t, c);
			else
				memcpy(buf + t, b->hp[j], c);
		}
		return;
	}
	for (unsigned i = 0; i < n; i++)
		for (unsigned k = 0; k < size; k++) {
			u8 *p = byte_at(b, (i + 1) * size - 1 - k);
			if (to_guest)
				*p = buf[i * size + k];
			else
				buf[i * size + k] = *p;
		}
}

enum fault_kind { F_NONE, F_GP, F_SS, F_PF, F_NOT_RAM };

struct str_fault {
	enum fault_kind kind;
	struct gw_fault pf;
};

static bool long64(const struct vcpu *v)
{
	return (v->efer & EFER_LMA) && (v->seg[SEG_CS].attr & SEG_ATTR_L);
}

/*
 * Translate the bytes of n elements starting at linear la (DF=0 upwards, DF=1 downwards, the
 * first element occupying [la, la+size)) page by page. Returns the elements whose bytes all
 * translate to guest RAM; a fault on the first page not covered is recorded in *f.
 */
static unsigned translate(const struct vcpu *v, u64 la, unsigned size, bool down, unsigned n, bool write,
    struct block *b, struct str_fault *f)
{
	struct gw_regs r;
	gw_regs_of(v, &r);
	bool l64 = long64(v);
	u64 lmask = l64 ? ~0ull : 0xFFFFFFFFull;
	unsigned total = n * size, done = 0;
	b->n = 0;
	b->down = down;
	u64 top = la + size; /* DF=1: one past the first element's last byte */
	while (done < total) {
		u64 a, lowest;
		unsigned c;
		if (!down) {
			a = (la + done) & lmask;
			c = 4096 - (unsigned)(a & 4095);
			lowest = a;
		} else {
			a = (top - done - 1) & lmask; /* highest byte of this piece */
			c = (unsigned)(a & 4095) + 1;
			lowest = a - (c - 1);
		}
		if (c > total - done)
			c = total - done;
		if (down)
			lowest = a - (c - 1);
		if (l64 && !gw_canonical(a, v->cr4 & (1ull << 12))) {
			f->kind = F_GP;
			break;
		}
		u64 gpa;
		enum gw_result res = gwalk(&r, lowest, write ? GW_WRITE : GW_READ, &gpa, &f->pf);
		if (res == GW_PAGE_FAULT) {
			f->kind = F_PF;
			if (down) {
				/* CR2: the next element's lowest byte, or the page's first if it starts below. */
				u64 next = (top - (u64)(done / size + 1) * size) & lmask, page = a & ~4095ull;
				f->pf.addr = next >= page && next <= a ? next : page;
			}
			break;
		}
		u8 *p = res == GW_OK ? gw_map(gpa, c) : NULL;
		if (!p) {
			f->kind = F_NOT_RAM;
			f->pf.addr = lowest;
			break;
		}
		b->hp[b->n] = p;
		b->len[b->n++] = c;
		done += c;
	}
	return done / size;
}

static void set_reg(struct vcpu *v, int reg, u64 val, unsigned asize)
{
	if (asize == 8)
		v->gpr[reg] = val;
	else if (asize == 4)
		v->gpr[reg] = (u32)val;
	else
		v->gpr[reg] = (v->gpr[reg] & ~0xFFFFull) | (val & 0xFFFF);
}

static void inject_fault(struct vcpu *v, const struct str_fault *f, u16 port)
{
	switch (f->kind) {
	case F_PF:
		vcpu_inject_pf(v, f->pf.error, f->pf.addr);
		break;
	case F_SS:
		vcpu_inject_ss(v);
		break;
	case F_NOT_RAM:
		if (log_budget_take(&ratelimit_budget))
			LOG("io: cpu%u: string I/O on port %x with guest memory at %lx that is not RAM; #GP\n", v->id,
			    port, f->pf.addr);
		vcpu_inject_gp(v);
		break;
	default:
		vcpu_inject_gp(v);
	}
}

/* The segment of OUTS: DS, or the override prefix in front of the instruction at CS:RIP. */
static int outs_segment(struct vcpu *v, bool *ok)
{
	u8 b[INSN_MAX_LEN];
	u64 len = v->exit.next_rip - v->rip;
	*ok = false;
	if (len == 0 || len > INSN_MAX_LEN)
		len = INSN_MAX_LEN;
	struct gw_fault pf;
	unsigned got;
	enum gw_result res = gw_fetch_insn(v, b, (unsigned)len, &got, &pf);
	if (res == GW_PAGE_FAULT) {
		vcpu_inject_pf(v, pf.error, pf.addr);
		return -1;
	}
	if (res != GW_OK) {
		if (log_budget_take(&ratelimit_budget))
			LOG("io: cpu%u: OUTS at rip=%lx runs from memory that is not RAM; #GP\n", v->id, v->rip);
		vcpu_inject_gp(v);
		return -1;
	}
	struct prefixes p;
	if (decode_prefixes(b, (unsigned)len, (enum cpu_mode)vcpu_code_mode(v), &p) != DECODE_OK ||
	    (b[p.len] & 0xFE) != 0x6E) {
		/* The code changed under us, or is not where it ran from: let the guest run it again. */
		if (log_budget_take(&ratelimit_budget))
			LOG("io: cpu%u: no OUTS at rip=%lx; re-executed\n", v->id, v->rip);
		return -1;
	}
	*ok = true;
	return p.seg >= 0 ? p.seg : SEG_DS;
}

static void string_io(struct vcpu *v, const struct io_exit *io)
{
	unsigned size = io->size, asize = io->addr_size;
	u64 amask = asize == 8 ? ~0ull : asize == 4 ? 0xFFFFFFFFull : 0xFFFF;
	u64 count = io->rep ? v->gpr[RCX] & amask : 1;
	bool down = v->rflags & RFLAGS_DF;
	int reg = io->in ? RDI : RSI;
	if (count == 0) {
		v->rip = v->exit.next_rip;
		return;
	}
	int s = SEG_ES;
	if (!io->in) {
		bool ok;
		s = outs_segment(v, &ok);
		if (!ok)
			return;
	}

	u64 start = v->gpr[reg] & amask, base = 0;
	u64 want = count < IO_STR_MAX_BYTES / size ? count : IO_STR_MAX_BYTES / size;
	if (debug_traps(v, &(struct vm_access){ ACCESS_IO, io->port, size }))
		want = 1; /* single-step or an I/O breakpoint: a #DB after each iteration */
	struct str_fault f = { F_NONE, { 0, 0 } };
	/* The block ends where the offset register wraps (the next exit goes on from there); an
	 * element across the wrap, or beyond the segment's limit, faults. */
	u64 block = gw_fit(start, 0, amask, size, down, want);
	u64 n = block ? gw_seg_fit(v, s, start, size, down, io->in, amask, block, &base) : 0;
	if (n < block || !block)
		f.kind = s == SEG_SS ? F_SS : F_GP;
	u64 la = (base + start) & (long64(v) ? ~0ull : 0xFFFFFFFFull);
	struct block b;
	if (n) {
		struct str_fault pf = { F_NONE, { 0, 0 } };
		unsigned t = translate(v, la, size, down, (unsigned)n, io->in, &b, &pf);
		if (t < n) {
			n = t;
			f = pf;
		}
	}

	/* The device. */
	unsigned done = 0;
	u8 *buf = iobuf[v->id];
	if (n) {
		struct io_hook h;
		bool whole = find_hook(io->port, &h) && (u32)io->port + size <= (u32)h.base + h.count;
		if (!io->in)
			block_copy(&b, buf, (unsigned)n, size, false);
		if (whole && h.str) {
			done = h.str(h.ctx, io->port, size, io->in, buf, (unsigned)n);
			if (done > n)
				done = (unsigned)n;
		} else {
			for (unsigned i = 0; i < n; i++) {
				u32 val = 0;
				if (!io->in)
					memcpy(&val, buf + i * size, size);
				val = whole ? h.fn(h.ctx, io->port, size, io->in, val)
					    : port_access(io->port, size, io->in, val);
				if (io->in)
					memcpy(buf + i * size, &val, size);
			}
			done = (unsigned)n;
		}
		if (io->in)
			block_copy(&b, buf, done, size, true);
	}

	u64 moved = (u64)done * size;
	set_reg(v, reg, down ? start - moved : start + moved, asize);
	if (io->rep)
		set_reg(v, RCX, count - done, asize);
	if (done < n)
		return; /* the handler stopped early: the guest runs the rest again */
	if (f.kind != F_NONE)
		inject_fault(v, &f, io->port);
	else if (count == done)
		v->rip = v->exit.next_rip;
}

void handle_io(struct vcpu *v)
{
	const struct io_exit *io = &v->exit.io;
	if (io->string) {
		string_io(v, io);
		return;
	}
	if (io->in) {
		u32 val = port_access(io->port, io->size, true, 0);
		if (io->size == 4)
			v->gpr[RAX] = val; /* a 32-bit register write clears bits 63:32 */
		else
			v->gpr[RAX] = (v->gpr[RAX] & ~(u64)size_mask(io->size)) | (val & size_mask(io->size));
	} else {
		port_access(io->port, io->size, false, (u32)v->gpr[RAX] & size_mask(io->size));
	}
	v->rip = v->exit.next_rip;
}
