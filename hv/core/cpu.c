#include "core/cpu.h"
#include "boot/layout.h"
#include "core/log.h"
#include "core/x86.h"

struct gate {
	u16 off0, sel;
	u8 ist, type;
	u16 off1;
	u32 off2, zero;
} __packed;

struct dtr {
	u16 limit;
	u64 base;
} __packed;

static const u64 gdt[3] __aligned(16) = { 0, GDT_CODE64, GDT_DATA }; /* boot/layout.h */
static struct gate idt[32] __aligned(16);

extern char trap_stubs[], rdmsr_insn[], wrmsr_insn[], msr_fault[];
static const struct cpu_nmi_window *nmi_windows;
static unsigned nmi_nwindows;

void cpu_nmi_windows(const struct cpu_nmi_window *w, unsigned n)
{
	nmi_windows = w;
	nmi_nwindows = n;
}

static const char *const names[32] = {
	"#DE",
	"#DB",
	"NMI",
	"#BP",
	"#OF",
	"#BR",
	"#UD",
	"#NM",
	"#DF",
	"?",
	"#TS",
	"#NP",
	"#SS",
	"#GP",
	"#PF",
	"?",
	"#MF",
	"#AC",
	"#MC",
	"#XM",
	"#VE",
	"#CP",
};

void trap_handler(struct trap_frame *f)
{
	/* NMIs reach the host only inside the backend's windows: leave the window. */
	if (f->vector == VEC_NMI) {
		for (unsigned i = 0; i < nmi_nwindows; i++)
			if (f->rip >= (u64)nmi_windows[i].from && f->rip <= (u64)nmi_windows[i].to)
				f->rip = (u64)nmi_windows[i].resume;
		return;
	}
	/* The only expected faults: an MSR the processor does not have (rdmsr_safe/wrmsr_safe). */
	if (f->vector == VEC_GP && (f->rip == (u64)rdmsr_insn || f->rip == (u64)wrmsr_insn)) {
		f->rip = (u64)msr_fault;
		return;
	}
	LOG("panic: host exception %lu %s error=%lx\n", f->vector, names[f->vector & 31] ? names[f->vector & 31] : "?",
	    f->error);
	LOG("  rip=%lx rsp=%lx rflags=%lx cr2=%lx cr3=%lx\n", f->rip, f->rsp, f->rflags, read_cr2(), read_cr3());
	LOG("  rax=%lx rbx=%lx rcx=%lx rdx=%lx rsi=%lx rdi=%lx\n", f->rax, f->rbx, f->rcx, f->rdx, f->rsi, f->rdi);
	LOG("  rbp=%lx r8=%lx r9=%lx r10=%lx r11=%lx\n", f->rbp, f->r8, f->r9, f->r10, f->r11);
	LOG("  r12=%lx r13=%lx r14=%lx r15=%lx\n", f->r12, f->r13, f->r14, f->r15);
	halt_forever();
}

void cpu_tables_init(void)
{
	for (unsigned v = 0; v < 32; v++) {
		u64 a = (u64)trap_stubs + v * 16;
		idt[v] = (struct gate){ (u16)a, 0x08, 0, 0x8E, (u16)(a >> 16), (u32)(a >> 32), 0 };
	}
	struct dtr g = { sizeof(gdt) - 1, (u64)gdt }, i = { sizeof(idt) - 1, (u64)idt };
	__asm__ volatile("lgdt %0\n\t"
			 "lidt %1\n\t"
			 "mov $0x10, %%eax\n\t"
			 "mov %%eax, %%ds\n\t"
			 "mov %%eax, %%es\n\t"
			 "mov %%eax, %%ss\n\t"
			 "xor %%eax, %%eax\n\t"
			 "mov %%eax, %%fs\n\t"
			 "mov %%eax, %%gs\n\t"
			 "pushq $0x08\n\t"
			 "lea 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "lretq\n"
			 "1:"
			 :
			 : "m"(g), "m"(i)
			 : "rax", "memory");
}
