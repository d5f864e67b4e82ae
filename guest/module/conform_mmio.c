// SPDX-License-Identifier: GPL-2.0
/*
 * Conformance probe, family "mmio.KIND": every instruction form of conform_asm.S against one
 * kind of page Parapet traps, on CPU 0. For each form, one line
 *   mmio.TARGET.FORM=[REG=VALUE ...] fl=RFLAGS mem=DWORD[.DWORD...] [ram=DWORD.DWORD.DWORD.DWORD]
 * or, when the instruction raised an exception, mmio.TARGET.FORM=trap=VECTOR mem=...
 * REG: the registers the form changed (as a signed change when they held an address that
 * differs from boot to boot);
 * RFLAGS masked to CF PF AF ZF SF OF DF (AF dropped after logical forms, all but CF after
 * BT*, where the others are undefined); mem: the target's registers read back afterwards;
 * ram: the RAM operand of a string form. Before each form the slot holds 0x00010040 and the
 * RAM operand 0x00010063 0x00010074 0x00010085 0x00010096.
 *
 * Targets (KIND: TARGET ...), each chosen so that every form is harmless there:
 *   ram: ram         a page of RAM, slot 0x80: the control, trapped by no one
 *   apic: apic       the local APIC page (xAPIC), slot 0x80, the TPR. Parapet traps its
 *                    writes. The TPR only weighs interrupts, and each form runs with
 *                    interrupts off and the TPR put back after it. QEMU decodes bits 11:4 of
 *                    the offset only, so 0x84-0x8f are the TPR again (what the 8-byte, string
 *                    and far-bit forms reach); it ignores accesses of any size but 4 bytes
 *                    (they read 0).
 *   ioapic: ioapic   the first I/O APIC (from the MADT), slot 0: IOREGSEL, a selector whose
 *                    value matters only to the next IOWIN access, and nothing of Linux's runs
 *                    meanwhile: both I/O APIC targets run under stop_machine().
 *           ioapic_win  IOWIN (slot 0x10) with IOREGSEL on the low dword of the highest
 *                    redirection entry that is masked (unused): only the loads and the
 *                    CF_WIN forms, whose writes keep it masked; restored afterwards.
 *   ecam: ecam       PCIe ECAM (base from the MCFG table) of 00:00.0, the host bridge (the
 *                    page Parapet traps on q35; no Linux driver uses its configuration),
 *                    slot 0x0c: Cache Line Size, a scratch byte on a host bridge (the rest of
 *                    that dword, the class and revision at 0x08 and the two BARs at 0x10-0x17,
 *                    which a host bridge does not implement, are read-only); restored
 *                    afterwards. (Not 0x3c: the bytes after it, 0x40 on, are device-specific,
 *                    EPBAR on a real Q35.)
 *         ecam_id    the same page at 0: vendor and device ID, loads only
 * A target that cannot run says why in one line (mmio.apic=not-run: ...), as it would on
 * both sides of a comparison.
 *
 * MOV with a 64-bit absolute address (moffs) needs the address in the instruction: before a
 * target runs, the forms' address fields are rewritten through a temporary writable alias
 * of the module's text page, then CPU 0 serializes before it executes them.
 */
#include <linux/acpi.h>
#include <linux/errno.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/pci_regs.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/stop_machine.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <asm/apicdef.h>
#include <asm/msr.h>
#include <asm/msr-index.h>
#include <asm/processor-flags.h>
#include <asm/sync_core.h>

#include "conform.h"

#define CF_V0 0x00010040u                 /* the slot's value before each form */
#define CF_A32_HIGH 0xa5a5a5a500000000ull /* a 67-prefixed pointer's ignored half */
#define CF_FLAGS_START (X86_EFLAGS_FIXED | X86_EFLAGS_CF | X86_EFLAGS_ZF | X86_EFLAGS_OF)
#define CF_FLAGS_ARITH \
	(X86_EFLAGS_CF | X86_EFLAGS_PF | X86_EFLAGS_AF | X86_EFLAGS_ZF | X86_EFLAGS_SF | X86_EFLAGS_OF | X86_EFLAGS_DF)

#define IOAPIC_IOREGSEL 0x00
#define IOAPIC_IOWIN 0x10
#define IOAPIC_VER 0x01
#define IOAPIC_RTE_LO(n) (0x10 + 2 * (n))
#define IOAPIC_RTE_MASKED (1u << 16)

static const u32 cf_ram_src[4] = { 0x00010063, 0x00010074, 0x00010085, 0x00010096 };

static const u64 cf_regs_start[CF_NREGS] = {
	[CF_RAX] = 0x000100b400012871ull,
	[CF_RBX] = 0x0001c0a700014863ull,
	[CF_RCX] = 2,
	[CF_RDX] = 0x0001a5a500018093ull,
	[CF_RSI] = 0x000100c30001003cull,
	[CF_RDI] = 0,
	[CF_R8] = 0x000100d200010054ull,
};

static const char *const cf_reg_names[CF_NREGS] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8" };

struct cf_target {
	const char *name;
	u8 __iomem *page;  /* the page, mapped */
	unsigned int slot; /* offset of the dword the forms access */
	bool ram;          /* plain memory (written with memset, not MMIO accessors) */
	bool loads_only;   /* only CF_LOAD forms */
	bool win_only;     /* only CF_LOAD and CF_WIN forms */
	bool select;       /* write sel to IOREGSEL before each form */
	u32 sel;
	bool restore_each; /* put orig back into the slot after each form */
	u32 orig;
	unsigned int dump[2], ndump; /* offsets read back after each form */
};

struct cf_job {
	struct seq_buf *out;
	struct cf_target *t;
	u32 *ram; /* the string forms' RAM operand, 16 bytes (+ 4 for CF_DF) */
};

static bool cf_form_runs(const struct cf_form *f, const struct cf_target *t)
{
	if (t->loads_only)
		return f->attrs & CF_LOAD;
	if (t->win_only)
		return f->attrs & (CF_LOAD | CF_WIN);
	return true;
}

/* The address the form accesses first (for CF_DF, the dword above the slot). */
static unsigned long cf_access(const struct cf_form *f, const struct cf_target *t)
{
	unsigned long a = (unsigned long)t->page + t->slot;

	if (f->attrs & CF_WIDE)
		a &= ~7ul;
	if (f->attrs & CF_DF)
		a += 4;
	return a;
}

/* The pointer register's value (or moffs) that makes the form access address a. */
static u64 cf_pointer(const struct cf_form *f, const struct cf_target *t, unsigned long a, u64 gs)
{
	u64 p = a;

	if (f->attrs & CF_FS)
		p = a - (unsigned long)t->page; /* FS.base is the page */
	else if (f->attrs & CF_GS)
		p = a - gs;
	if (f->attrs & CF_BIAS8)
		p -= 8;
	if (f->attrs & CF_BIAS256)
		p -= 0x100;
	if (f->attrs & CF_A32)
		p = CF_A32_HIGH | (u32)p;
	return p;
}

/* Rewrites the 8 bytes at `where` in the module's (read-only) text. */
static int cf_patch_text(u8 *where, u64 val)
{
	unsigned int off = offset_in_page(where);
	unsigned int n = off + sizeof(val) > PAGE_SIZE ? 2 : 1;
	struct page *pages[2];
	void *map;

	pages[0] = vmalloc_to_page(where);
	pages[1] = n == 2 ? vmalloc_to_page(where + sizeof(val) - 1) : NULL;
	if (!pages[0] || (n == 2 && !pages[1]))
		return -EFAULT;
	map = vmap(pages, n, VM_MAP, PAGE_KERNEL);
	if (!map)
		return -ENOMEM;
	memcpy((u8 *)map + off, &val, sizeof(val));
	vunmap(map);
	return 0;
}

/* Points every moffs form at target t (before it runs on CPU 0, which then serializes). */
static int cf_patch_moffs(const struct cf_target *t)
{
	const struct cf_form *f;
	int err;

	for (f = cf_forms_start; f < cf_forms_end; f++) {
		if (!(f->attrs & CF_MOFFS) || !cf_form_runs(f, t))
			continue;
		err = cf_patch_text(f->moffs, cf_pointer(f, t, cf_access(f, t), 0));
		if (err)
			return err;
	}
	return 0;
}

static void cf_target_reset(const struct cf_target *t, u32 *ram)
{
	unsigned int i;

	memcpy(ram, cf_ram_src, sizeof(cf_ram_src));
	ram[4] = 0;
	if (t->ram) {
		for (i = 0; i < 8; i++)
			((u32 *)(t->page + (t->slot & ~7u) - 8))[i] = CF_V0;
		return;
	}
	if (t->select)
		writel(t->sel, t->page + IOAPIC_IOREGSEL);
	if (!t->loads_only)
		writel(CF_V0, t->page + t->slot);
}

static u32 cf_target_read(const struct cf_target *t, unsigned int off)
{
	return t->ram ? *(u32 *)(t->page + off) : readl(t->page + off);
}

/*
 * Whether register r started as an address that differs from boot to boot (a virtual address,
 * or one relative to GS.base): printed as a change, not a value. An offset from FS.base (the
 * page) is the same in every boot and printed as it is.
 */
static bool cf_absolute(const struct cf_form *f, unsigned int r)
{
	bool target_in_rsi = f->attrs & CF_STR_SRC;

	if (r == CF_RDI)
		return target_in_rsi || !(f->attrs & CF_FS);
	if (r == CF_RSI && (f->attrs & (CF_STR_SRC | CF_STR_DST)))
		return !target_in_rsi || !(f->attrs & CF_FS);
	return false;
}

static void cf_report(struct seq_buf *out, const struct cf_target *t, const struct cf_form *f, const struct cf_state *s,
    const u32 *mem, const u32 *ram)
{
	bool str = f->attrs & (CF_STR_SRC | CF_STR_DST);
	u64 mask = CF_FLAGS_ARITH;
	unsigned int r, i;

	if (f->attrs & CF_LOGIC)
		mask &= ~X86_EFLAGS_AF;
	if (f->attrs & CF_BITOP)
		mask = X86_EFLAGS_CF | X86_EFLAGS_DF;
	seq_buf_printf(out, "mmio.%s.%s=", t->name, f->name);
	if (s->trap >= 0) {
		seq_buf_printf(out, "trap=%lld", s->trap);
	} else {
		for (r = 0; r < CF_NREGS; r++) {
			if (s->out[r] == s->in[r])
				continue;
			if (cf_absolute(f, r))
				seq_buf_printf(out, "%s=%+lld ", cf_reg_names[r], (long long)(s->out[r] - s->in[r]));
			else
				seq_buf_printf(out, "%s=%llx ", cf_reg_names[r], s->out[r]);
		}
		seq_buf_printf(out, "fl=%llx", s->flags_out & mask);
	}
	seq_buf_printf(out, " mem=");
	for (i = 0; i < t->ndump; i++)
		seq_buf_printf(out, "%s%08x", i ? "." : "", mem[i]);
	if (str)
		seq_buf_printf(out, " ram=%08x.%08x.%08x.%08x", ram[0], ram[1], ram[2], ram[3]);
	seq_buf_printf(out, "\n");
}

/* Runs every form that applies to t, on this CPU; interrupts off around each one. */
static void cf_run_target(struct cf_job *job, struct cf_target *t)
{
	const struct cf_form *f;
	struct cf_state s;
	unsigned long flags, a;
	u32 mem[2], ram[4];
	u64 fs, gs, p;
	unsigned int i;

	sync_core(); /* the moffs fields were just rewritten */
	if (t->restore_each) {
		t->orig = readl(t->page + t->slot);
		seq_buf_printf(job->out, "mmio.%s.orig=%08x\n", t->name, t->orig);
	}
	for (f = cf_forms_start; f < cf_forms_end; f++) {
		if (!cf_form_runs(f, t))
			continue;
		memset(&s, 0, sizeof(s));
		memcpy(s.in, cf_regs_start, sizeof(s.in));
		if (f->attrs >> CF_COUNT_SHIFT)
			s.in[CF_RCX] = (f->attrs >> CF_COUNT_SHIFT) & 0xff;
		s.flags_in = CF_FLAGS_START | (f->attrs & CF_DF ? X86_EFLAGS_DF : 0);

		local_irq_save(flags);
		rdmsrl(MSR_GS_BASE, gs);
		a = cf_access(f, t);
		p = cf_pointer(f, t, a, gs);
		if (f->attrs & CF_STR_SRC) {
			s.in[CF_RSI] = p;
			s.in[CF_RDI] = (unsigned long)job->ram + (f->attrs & CF_DF ? 4 : 0);
		} else if (f->attrs & CF_STR_DST) {
			s.in[CF_RDI] = p;
			s.in[CF_RSI] = (unsigned long)job->ram + (f->attrs & CF_DF ? 4 : 0);
		} else {
			s.in[CF_RDI] = p;
		}
		cf_target_reset(t, job->ram);
		if (f->attrs & CF_FS) {
			rdmsrl(MSR_FS_BASE, fs);
			wrmsrl(MSR_FS_BASE, (unsigned long)t->page);
		}
		f->run(&s);
		if (f->attrs & CF_FS)
			wrmsrl(MSR_FS_BASE, fs);
		for (i = 0; i < t->ndump; i++)
			mem[i] = cf_target_read(t, t->dump[i]);
		memcpy(ram, job->ram, sizeof(ram));
		if (t->restore_each)
			writel(t->orig, t->page + t->slot);
		local_irq_restore(flags);

		cf_report(job->out, t, f, &s, mem, ram);
	}
	if (t->restore_each)
		seq_buf_printf(job->out, "mmio.%s.restored=%d\n", t->name, readl(t->page + t->slot) == t->orig);
}

static int cf_run_on_cpu0(void *arg)
{
	struct cf_job *job = arg;

	cf_run_target(job, job->t);
	return 0;
}

/* Under stop_machine() on CPU 0: the forms against IOREGSEL. */
static int cf_ioapic_sel(void *arg)
{
	struct cf_job *job = arg;
	struct cf_target *t = job->t;
	u32 sel = readl(t->page + IOAPIC_IOREGSEL), ver;

	writel(IOAPIC_VER, t->page + IOAPIC_IOREGSEL);
	ver = readl(t->page + IOAPIC_IOWIN);
	seq_buf_printf(job->out, "mmio.ioapic.version=%08x\n", ver);
	cf_run_target(job, t);
	writel(sel, t->page + IOAPIC_IOREGSEL);
	return 0;
}

/* Under stop_machine() on CPU 0: the loads and CF_WIN forms against an unused redirection entry. */
static int cf_ioapic_win(void *arg)
{
	struct cf_job *job = arg;
	struct cf_target *w = job->t;
	u32 sel = readl(w->page + IOAPIC_IOREGSEL), lo, entry_lo = 0;
	int e, entry = -1;

	writel(IOAPIC_VER, w->page + IOAPIC_IOREGSEL);
	for (e = (readl(w->page + IOAPIC_IOWIN) >> 16) & 0xff; e >= 0 && entry < 0; e--) {
		writel(IOAPIC_RTE_LO(e), w->page + IOAPIC_IOREGSEL);
		lo = readl(w->page + IOAPIC_IOWIN);
		if (lo & IOAPIC_RTE_MASKED) {
			entry = e;
			entry_lo = lo;
		}
	}
	if (entry < 0) {
		seq_buf_printf(job->out, "mmio.ioapic_win=not-run: no masked redirection entry\n");
	} else {
		seq_buf_printf(job->out, "mmio.ioapic_win.entry=%d\n", entry);
		w->sel = IOAPIC_RTE_LO(entry);
		cf_run_target(job, w);
		writel(w->sel, w->page + IOAPIC_IOREGSEL);
		writel(entry_lo, w->page + IOAPIC_IOWIN);
		seq_buf_printf(job->out, "mmio.ioapic_win.restored=%d\n", readl(w->page + IOAPIC_IOWIN) == entry_lo);
	}
	writel(sel, w->page + IOAPIC_IOREGSEL);
	return 0;
}

/* The first I/O APIC of the MADT, 0 if none. */
static u64 cf_ioapic_phys(void)
{
	struct acpi_table_header *h;
	struct acpi_subtable_header *sub;
	u64 base = 0;
	u8 *p, *end;

	if (ACPI_FAILURE(acpi_get_table(ACPI_SIG_MADT, 0, &h)))
		return 0;
	p = (u8 *)h + sizeof(struct acpi_table_madt);
	end = (u8 *)h + h->length;
	for (; p + sizeof(*sub) <= end && !base; p += sub->length) {
		sub = (struct acpi_subtable_header *)p;
		if (sub->length < sizeof(*sub) || p + sub->length > end)
			break;
		if (sub->type == ACPI_MADT_TYPE_IO_APIC && sub->length >= sizeof(struct acpi_madt_io_apic))
			base = ((struct acpi_madt_io_apic *)p)->address;
	}
	acpi_put_table(h);
	return base;
}

/* ECAM of segment 0, bus 0, from the MCFG table; 0 if none. */
static u64 cf_ecam_phys(void)
{
	struct acpi_table_header *h;
	struct acpi_mcfg_allocation *m, *end;
	u64 base = 0;

	if (ACPI_FAILURE(acpi_get_table(ACPI_SIG_MCFG, 0, &h)))
		return 0;
	m = (struct acpi_mcfg_allocation *)((u8 *)h + sizeof(struct acpi_table_mcfg));
	end = (struct acpi_mcfg_allocation *)((u8 *)h + h->length);
	for (; m + 1 <= end && !base; m++)
		if (m->pci_segment == 0 && m->start_bus_number == 0)
			base = m->address;
	acpi_put_table(h);
	return base;
}

/*
 * Runs fn for target t on CPU 0: in a kworker bound to it, or (stop) under stop_machine(),
 * with every other CPU spinning with interrupts off.
 */
static void cf_run(struct cf_job *job, struct cf_target *t, int (*fn)(void *), bool stop)
{
	int err = cf_patch_moffs(t);

	if (err) {
		seq_buf_printf(job->out, "mmio.%s=error: cannot patch the moffs forms (%d)\n", t->name, err);
		return;
	}
	job->t = t;
	err = stop ? stop_machine(fn, job, cpumask_of(0)) : smp_call_on_cpu(0, fn, job, false);
	if (err)
		seq_buf_printf(job->out, "mmio.%s=error: cannot run on cpu0 (%d)\n", t->name, err);
}

void cf_mmio(struct seq_buf *out, const char *kind)
{
	struct cf_job job = { .out = out };
	struct cf_target t = { .slot = 0x80, .dump = { 0x80 }, .ndump = 1 };
	struct cf_target w;
	u64 phys, apicbase;
	u8 *ram_page = NULL;
	u32 id;

	job.ram = kzalloc(64, GFP_KERNEL);
	if (!job.ram) {
		seq_buf_printf(out, "mmio.%s=error: out of memory\n", kind);
		return;
	}

	if (!strcmp(kind, "ram")) {
		ram_page = (u8 *)__get_free_page(GFP_KERNEL | __GFP_ZERO);
		if (!ram_page) {
			seq_buf_printf(out, "mmio.ram=error: out of memory\n");
			goto out;
		}
		t.name = "ram";
		t.page = (u8 __iomem *)ram_page;
		t.ram = true;
		t.dump[1] = 0x84;
		t.ndump = 2;
		cf_run(&job, &t, cf_run_on_cpu0, false);
	} else if (!strcmp(kind, "apic")) {
		rdmsrl(MSR_IA32_APICBASE, apicbase);
		if (apicbase & X2APIC_ENABLE) {
			seq_buf_printf(out, "mmio.apic=not-run: the local APIC is in x2APIC mode (no xAPIC page)\n");
			goto out;
		}
		phys = apicbase & MSR_IA32_APICBASE_BASE;
		t.name = "apic";
		t.page = ioremap(phys, PAGE_SIZE);
		if (!t.page) {
			seq_buf_printf(out, "mmio.apic=error: ioremap failed\n");
			goto out;
		}
		seq_buf_printf(out, "mmio.apic.page=%llx slot=tpr\n", phys);
		t.restore_each = true; /* CPU 0's TPR, read on CPU 0 */
		cf_run(&job, &t, cf_run_on_cpu0, false);
		iounmap(t.page);
	} else if (!strcmp(kind, "ioapic")) {
		phys = cf_ioapic_phys();
		if (!phys) {
			seq_buf_printf(out, "mmio.ioapic=not-run: no I/O APIC in the MADT\n");
			goto out;
		}
		t.name = "ioapic";
		t.page = ioremap(phys, PAGE_SIZE);
		if (!t.page) {
			seq_buf_printf(out, "mmio.ioapic=error: ioremap failed\n");
			goto out;
		}
		seq_buf_printf(out, "mmio.ioapic.page=%llx slot=ioregsel\n", phys);
		t.slot = IOAPIC_IOREGSEL;
		t.dump[0] = IOAPIC_IOREGSEL;
		w = (struct cf_target){ .name = "ioapic_win",
			.page = t.page,
			.slot = IOAPIC_IOWIN,
			.win_only = true,
			.select = true,
			.dump = { IOAPIC_IOREGSEL, IOAPIC_IOWIN },
			.ndump = 2 };
		cf_run(&job, &t, cf_ioapic_sel, true);
		cf_run(&job, &w, cf_ioapic_win, true);
		iounmap(t.page);
	} else if (!strcmp(kind, "ecam")) {
		phys = cf_ecam_phys();
		if (!phys) {
			seq_buf_printf(out, "mmio.ecam=not-run: no MCFG table (no PCIe ECAM on this machine)\n");
			goto out;
		}
		t.page = ioremap(phys, PAGE_SIZE); /* 00:00.0 */
		if (!t.page) {
			seq_buf_printf(out, "mmio.ecam=error: ioremap failed\n");
			goto out;
		}
		id = readl(t.page);
		seq_buf_printf(out, "mmio.ecam.page=%llx bdf=00:00.0 vendor=%04x device=%04x slot=cache-line-size\n",
		    phys, id & 0xffff, id >> 16);
		t.name = "ecam";
		t.slot = PCI_CACHE_LINE_SIZE;
		t.dump[0] = PCI_CACHE_LINE_SIZE;
		t.dump[1] = PCI_BASE_ADDRESS_0;
		t.ndump = 2;
		t.orig = readl(t.page + PCI_CACHE_LINE_SIZE);
		cf_run(&job, &t, cf_run_on_cpu0, false);
		writel(t.orig, t.page + PCI_CACHE_LINE_SIZE);
		seq_buf_printf(out, "mmio.ecam.restored=%d\n", readl(t.page + PCI_CACHE_LINE_SIZE) == t.orig);
		t.name = "ecam_id";
		t.slot = 0;
		t.dump[0] = 0;
		t.ndump = 1;
		t.loads_only = true;
		cf_run(&job, &t, cf_run_on_cpu0, false);
		iounmap(t.page);
	} else {
		seq_buf_printf(out, "mmio.%s=error: unknown kind\n", kind);
	}
out:
	if (ram_page)
		free_page((unsigned long)ram_page);
	kfree(job.ram);
}
