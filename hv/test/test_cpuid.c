/* CPUID as the guest sees it (vmm/cpuid.c): the bits that follow the guest's own CR4 and mode,
 * whatever the host's were, and virtualization hidden. */
#include "test.h"
#include "vmm/cpuid.h"
#include "core/x86.h"

#define ALL 0xFFFFFFFFu

/* Leaf/sub-leaf with all bits set in the host's answer, as the guest sees it. */
static u32 guest(u32 leaf, u32 sub, enum cpuid_reg reg, u64 cr4, bool long_mode, bool intel)
{
	u32 r[4] = { ALL, ALL, ALL, ALL };
	struct cpuid_guest g = { cr4, long_mode, intel };
	cpuid_for_guest(leaf, sub, &g, r);
	return r[reg];
}

/* The same with the host's answer all clear. */
static u32 guest0(u32 leaf, u32 sub, enum cpuid_reg reg, u64 cr4)
{
	u32 r[4] = { 0, 0, 0, 0 };
	struct cpuid_guest g = { cr4, true, false };
	cpuid_for_guest(leaf, sub, &g, r);
	return r[reg];
}

static void os_bits_follow_guest_cr4(void)
{
	/* The host runs with CR4.OSXSAVE: a guest without it must not see OSXSAVE. */
	CHECK_EQ(guest(1, 0, CPUID_ECX, 0, true, false), ALL & ~(1u << 27) & ~CPUID_1_ECX_VMX);
	CHECK_EQ(guest0(1, 0, CPUID_ECX, CR4_OSXSAVE), 1u << 27);
	CHECK_EQ(guest(1, 5, CPUID_ECX, CR4_OSXSAVE, true, false), ALL & ~CPUID_1_ECX_VMX); /* sub-leaf ignored */
	/* OSPKE (7.0:ECX[4]) from CR4.PKE; sub-leaf 1 is another register set. */
	CHECK_EQ(guest(7, 0, CPUID_ECX, 0, true, false), ALL & ~(1u << 4));
	CHECK_EQ(guest0(7, 0, CPUID_ECX, CR4_PKE), 1u << 4);
	CHECK_EQ(guest(7, 1, CPUID_ECX, 0, true, false), ALL);
	CHECK_EQ(guest(7, 0, CPUID_EBX, 0, true, false), ALL);
}

static void the_rest_is_the_processors(void)
{
	/* Leaf 1 EBX (initial APIC ID), EDX (APIC follows IA32_APIC_BASE.EN in hardware), leaf 0Bh
	 * and 1Fh EDX (x2APIC ID), leaf 0Dh (XSAVE sizes for the live XCR0): untouched. */
	CHECK_EQ(guest(1, 0, CPUID_EBX, 0, true, false), ALL);
	CHECK_EQ(guest(1, 0, CPUID_EDX, 0, true, false), ALL);
	CHECK_EQ(guest(0xB, 1, CPUID_EDX, 0, true, false), ALL);
	CHECK_EQ(guest(0x1F, 0, CPUID_EDX, 0, true, false), ALL);
	CHECK_EQ(guest(0xD, 0, CPUID_EBX, 0, true, false), ALL);
	CHECK_EQ(guest(0xD, 1, CPUID_EBX, 0, true, false), ALL);
	CHECK_EQ(guest(0, 0, CPUID_EAX, 0, true, false), ALL);
	CHECK_EQ(guest0(1, 0, CPUID_ECX, 0), 0); /* nothing is ever added */
}

static void virtualization_hidden(void)
{
	CHECK_EQ(guest(0x80000001, 0, CPUID_ECX, 0, true, false), ALL & ~CPUID_80000001_ECX_SVM);
	for (enum cpuid_reg r = CPUID_EAX; r <= CPUID_EDX; r++)
		CHECK_EQ(guest(0x8000000A, 0, r, 0, true, false), 0);
}

static void intel_syscall_only_in_long_mode(void)
{
	CHECK_EQ(guest(0x80000001, 0, CPUID_EDX, 0, false, true), ALL & ~(1u << 11));
	CHECK_EQ(guest(0x80000001, 0, CPUID_EDX, 0, true, true), ALL);
	CHECK_EQ(guest(0x80000001, 0, CPUID_EDX, 0, false, false), ALL); /* AMD: in every mode */
}

TESTS(cpuid_tests) = {
	{ "cpuid: OSXSAVE and OSPKE follow the guest's CR4", os_bits_follow_guest_cr4 },
	{ "cpuid: APIC IDs, XSAVE sizes and the rest are the processor's", the_rest_is_the_processors },
	{ "cpuid: SVM hidden", virtualization_hidden },
	{ "cpuid: Intel reports SYSCALL only in long mode", intel_syscall_only_in_long_mode },
	{ NULL, NULL },
};
