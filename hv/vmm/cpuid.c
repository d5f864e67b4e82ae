/* CPUID: the guest sees the real processor, minus its virtualization extensions. */
#include "vmm/vcpu.h"
#include "core/x86.h"

void handle_cpuid(struct vcpu *v)
{
	u32 leaf = (u32)v->gpr[RAX], sub = (u32)v->gpr[RCX];
	u32 a, b, c, d;
	cpuid(leaf, sub, &a, &b, &c, &d);
	switch (leaf) {
	case 0x1:
		c &= ~CPUID_1_ECX_VMX;
		break;
	case 0x80000001:
		c &= ~CPUID_80000001_ECX_SVM;
		break;
	case 0x8000000A:               /* SVM revision and features: absent */
		a = b = c = d = 0;
		break;
	}
	v->gpr[RAX] = a;
	v->gpr[RBX] = b;
	v->gpr[RCX] = c;
	v->gpr[RDX] = d;
	vcpu_skip(v, 2);
}
