/*
 * CPUID as the guest's processor answers it (Intel SDM vol. 2A "CPUID", AMD APM vol. 3
 * appendix E). Parapet executes CPUID itself, on the guest's own processor: every vCPU runs on
 * its physical CPU and nothing else runs there. So identification, features and topology are
 * the guest's already: the initial APIC IDs (leaf 1 EBX[31:24], leaves 0Bh/1Fh EDX, AMD leaf
 * 8000001Eh EAX) are this processor's, and so are the bits that follow registers the guest owns
 * and Parapet never switches:
 *   1:EDX[9] APIC                IA32_APIC_BASE.EN (the guest writes the real MSR, vmm/apic.c)
 *   1:ECX[3] MONITOR, leaf 0 EAX IA32_MISC_ENABLE (not intercepted)
 *   80000001h:EDX[20] NX (Intel) IA32_MISC_ENABLE.XD_DISABLE
 *   0Dh.0:EBX, 0Dh.1:EBX         the XSAVE area sizes for XCR0 and XCR0 | IA32_XSS: neither is
 *                                intercepted nor in the VMCB, so both hold the guest's values
 *                                whenever Parapet runs (crypto/xts.c puts XCR0 back).
 * What the host's CPUID gets wrong is what follows the CPU's current mode, which in the host is
 * Parapet's, not the guest's: that is the table in cpuid.c. And it hides virtualization.
 */
#ifndef PARAPET_CPUID_H
#define PARAPET_CPUID_H

#include "core/types.h"

/* The guest state CPUID reads back. */
struct cpuid_guest {
	u64 cr4;
	bool long_mode; /* EFER.LMA: Intel reports SYSCALL in 80000001h:EDX only then */
	bool intel;     /* GenuineIntel: the vendor's rules for the mode-dependent bits */
};

enum cpuid_reg { CPUID_EAX, CPUID_EBX, CPUID_ECX, CPUID_EDX };

/* r holds what CPUID(leaf, sub) returned on this processor in the host; make it the guest's. */
void cpuid_for_guest(u32 leaf, u32 sub, const struct cpuid_guest *g, u32 r[4]);

#endif
