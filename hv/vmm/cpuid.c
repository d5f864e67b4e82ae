/* CPUID: the guest sees its own processor, minus the virtualization extensions (cpuid.h). */
#include "vmm/cpuid.h"
#include "vmm/vcpu.h"
#include "core/x86.h"

#define ANY_SUB 0xFFFFFFFFu

enum rule {
	HIDE,       /* always clear */
	FROM_CR4,   /* set exactly when the guest's CR4 has `cr4` */
	INTEL_LONG, /* Intel: set only in long mode (SDM vol. 2A, CPUID 80000001h EDX[11]) */
};

static const struct {
	u32 leaf, sub;
	enum cpuid_reg reg;
	u32 bit;
	enum rule rule;
	u64 cr4;
} rules[] = {
	{ 0x00000001, ANY_SUB, CPUID_ECX, CPUID_1_ECX_VMX, HIDE, 0 },
	{ 0x00000001, ANY_SUB, CPUID_ECX, 1u << 27, FROM_CR4, CR4_OSXSAVE }, /* OSXSAVE */
	{ 0x00000007, 0, CPUID_ECX, 1u << 4, FROM_CR4, CR4_PKE },            /* OSPKE */
	{ 0x80000001, ANY_SUB, CPUID_ECX, CPUID_80000001_ECX_SVM, HIDE, 0 },
	{ 0x80000001, ANY_SUB, CPUID_EDX, 1u << 11, INTEL_LONG, 0 }, /* SYSCALL */
};

void cpuid_for_guest(u32 leaf, u32 sub, const struct cpuid_guest *g, u32 r[4])
{
	if (leaf == 0x8000000A) { /* SVM revision and features: absent */
		r[0] = r[1] = r[2] = r[3] = 0;
		return;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(rules); i++) {
		if (rules[i].leaf != leaf || (rules[i].sub != ANY_SUB && rules[i].sub != sub))
			continue;
		u32 *x = &r[rules[i].reg], bit = rules[i].bit;
		switch (rules[i].rule) {
		case HIDE:
			*x &= ~bit;
			break;
		case FROM_CR4:
			*x = (g->cr4 & rules[i].cr4) ? *x | bit : *x & ~bit;
			break;
		case INTEL_LONG:
			if (g->intel && !g->long_mode)
				*x &= ~bit;
			break;
		}
	}
}

/* "GenuineIntel" in EBX, EDX, ECX of leaf 0. */
static bool vendor_intel(void)
{
	u32 a, b, c, d;
	cpuid(0, 0, &a, &b, &c, &d);
	return b == 0x756E6547 && d == 0x49656E69 && c == 0x6C65746E;
}

void handle_cpuid(struct vcpu *v)
{
	u32 leaf = (u32)v->gpr[RAX], sub = (u32)v->gpr[RCX], r[4];
	cpuid(leaf, sub, &r[0], &r[1], &r[2], &r[3]);
	/* Only leaf 80000001h has a vendor rule: ask the vendor only then. */
	struct cpuid_guest g = { v->cr4, (v->efer & EFER_LMA) != 0, leaf == 0x80000001 && vendor_intel() };
	cpuid_for_guest(leaf, sub, &g, r);
	v->gpr[RAX] = r[0];
	v->gpr[RBX] = r[1];
	v->gpr[RCX] = r[2];
	v->gpr[RDX] = r[3];
	vcpu_skip(v, 2);
}
