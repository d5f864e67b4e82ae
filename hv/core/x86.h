/* x86-64 instructions, registers and architectural constants used by the host. */
#ifndef PARAPET_X86_H
#define PARAPET_X86_H

#include "core/types.h"

/* Model-specific registers (AMD APM vol. 2, Intel SDM vol. 4). */
#define MSR_EFER 0xC0000080u
#define MSR_VM_CR 0xC0010114u /* SVM: VM control */
#define MSR_IGNNE 0xC0010115u
#define MSR_SMM_CTL 0xC0010116u
#define MSR_VM_HSAVE_PA 0xC0010117u /* SVM: host save area */
#define MSR_SVM_KEY 0xC0010118u
#define MSR_SMM_BASE 0xC0010111u
#define MSR_SMM_ADDR 0xC0010112u
#define MSR_SMM_MASK 0xC0010113u
#define MSR_FEATURE_CTL 0x0000003Au /* Intel: VMXON lock */

#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)
#define EFER_SVME (1ull << 12)
#define EFER_LMSLE (1ull << 13)
#define EFER_FFXSR (1ull << 14)
#define EFER_TCE (1ull << 15)

#define VM_CR_SVMDIS (1ull << 4)

#define CR0_PE (1ull << 0)
#define CR0_ET (1ull << 4)
#define CR0_NW (1ull << 29)
#define CR0_CD (1ull << 30)
#define CR0_PG (1ull << 31)
#define CR4_DE (1ull << 3)
#define CR4_PAE (1ull << 5)
#define CR4_OSXSAVE (1ull << 18)
#define CR4_PKE (1ull << 22)

/* CPUID feature bits. */
#define CPUID_1_ECX_VMX (1u << 5)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_80000001_ECX_SVM (1u << 2)
#define CPUID_80000001_EDX_LM (1u << 29)
#define CPUID_80000001_EDX_1GB (1u << 26)

/* Exception vectors. */
#define VEC_NMI 2
#define VEC_UD 6
#define VEC_GP 13

static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

/* MAXPHYADDR, the processor's physical address width: CPUID 80000008h EAX[7:0], else 36. */
static inline unsigned cpu_phys_bits(void)
{
	u32 a, b, c, d;
	cpuid(0x80000000, 0, &a, &b, &c, &d);
	if (a < 0x80000008)
		return 36;
	cpuid(0x80000008, 0, &a, &b, &c, &d);
	return a & 0xFF;
}

static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((u64)hi << 32) | lo;
}

static inline void wrmsr(u32 msr, u64 v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}

/* rdmsr/wrmsr that return false instead of faulting (core/isr.S recovers the #GP). */
bool rdmsr_safe(u32 msr, u64 *val);
bool wrmsr_safe(u32 msr, u64 val);

static inline void outb(u16 port, u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline u64 read_cr0(void)
{
	u64 v;
	__asm__ volatile("mov %%cr0, %0" : "=r"(v));
	return v;
}
static inline u64 read_cr2(void)
{
	u64 v;
	__asm__ volatile("mov %%cr2, %0" : "=r"(v));
	return v;
}
static inline u64 read_cr3(void)
{
	u64 v;
	__asm__ volatile("mov %%cr3, %0" : "=r"(v));
	return v;
}
static inline u64 read_cr4(void)
{
	u64 v;
	__asm__ volatile("mov %%cr4, %0" : "=r"(v));
	return v;
}
static inline u64 rdtsc(void)
{
	u32 lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (u64)hi << 32 | lo;
}
static inline void xsetbv(u32 index, u64 v)
{
	__asm__ volatile("xsetbv" : : "c"(index), "a"((u32)v), "d"((u32)(v >> 32)));
}
static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

static inline __noreturn void halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

#endif
