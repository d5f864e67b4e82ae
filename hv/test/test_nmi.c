/* The guest's NMIs (vmm/nmi.c): blocked from delivery until the handler's IRET has run, one
 * latched meanwhile and delivered right after that IRET, never dropped for another event. And
 * the debug traps of an emulated instruction (vmm/debug.c). */
#include "test.h"
#include "vmm/nmi.h"
#include "vmm/debug.h"
#include "core/x86.h"
#include <string.h>

#define HANDLER 0x5000 /* RIP inside the guest's NMI handler */
#define IRET_AT 0x5010 /* the handler's IRET */
#define BACK 0x1234    /* where the IRET returns */

static void delivered_then_blocked_until_iret(void)
{
	struct vnmi n = { 0 };
	CHECK_EQ(nmi_entry(&n, BACK, false), NMI_NONE);
	nmi_raise(&n);
	CHECK_EQ(nmi_entry(&n, BACK, false), NMI_INJECT);
	CHECK(n.blocked && !n.pending);
	CHECK(nmi_iret_intercept(&n));
	/* A second and a third NMI in the handler: one is latched, nothing is delivered. */
	nmi_raise(&n);
	nmi_raise(&n);
	CHECK_EQ(nmi_entry(&n, HANDLER, false), NMI_NONE);
	CHECK(n.pending && nmi_iret_intercept(&n));
	/* The IRET: it runs stepped, the latched NMI follows it. */
	nmi_iret(&n, IRET_AT);
	CHECK(!nmi_iret_intercept(&n));
	CHECK_EQ(nmi_entry(&n, IRET_AT, false), NMI_STEP);
	CHECK(n.blocked);                                 /* until the IRET has run */
	CHECK_EQ(nmi_entry(&n, BACK, false), NMI_INJECT); /* the step's exit: it has */
	CHECK(n.blocked && !n.pending);
	/* Only one was latched: after this handler's IRET nothing more comes. */
	nmi_iret(&n, IRET_AT);
	CHECK_EQ(nmi_entry(&n, IRET_AT, false), NMI_NONE);
	CHECK(n.blocked && !nmi_iret_intercept(&n));
	CHECK_EQ(nmi_entry(&n, BACK, false), NMI_NONE);
	CHECK(!n.blocked && !n.pending && !nmi_iret_intercept(&n));
}

static void exit_before_the_iret_ran(void)
{
	struct vnmi n = { 0 };
	nmi_raise(&n);
	CHECK_EQ(nmi_entry(&n, BACK, false), NMI_INJECT);
	nmi_iret(&n, IRET_AT);
	CHECK_EQ(nmi_entry(&n, IRET_AT, false), NMI_NONE);
	/* An NMI arrives at the IRET's own boundary: still blocked, the IRET is stepped. */
	nmi_raise(&n);
	CHECK(n.blocked);
	CHECK_EQ(nmi_entry(&n, IRET_AT, false), NMI_STEP);
	/* The step's exit came before the IRET ran (say, a nested page fault on its stack): again. */
	CHECK_EQ(nmi_entry(&n, IRET_AT, false), NMI_STEP);
	/* An exception for the IRET itself comes first: the IRET is intercepted again later. */
	CHECK_EQ(nmi_entry(&n, IRET_AT, true), NMI_NONE);
	CHECK(n.blocked && !n.iret && nmi_iret_intercept(&n));
	/* IRET outside an NMI handler (a stale intercept) changes nothing. */
	struct vnmi idle = { 0 };
	nmi_iret(&idle, IRET_AT);
	CHECK(!idle.iret && !nmi_iret_intercept(&idle));
}

static void kept_when_another_event_is_injected(void)
{
	struct vnmi n = { 0 };
	nmi_raise(&n);
	/* The exit that brought it was delivering an interrupt: that goes first, then an exit. */
	CHECK_EQ(nmi_entry(&n, BACK, true), NMI_KICK);
	CHECK(n.pending);
	/* The processor took Parapet's NMI before the event: no second kick, no chase. */
	CHECK_EQ(nmi_entry(&n, BACK, true), NMI_NONE);
	CHECK(n.pending);
	/* The next entry without an event delivers it. */
	CHECK_EQ(nmi_entry(&n, HANDLER, false), NMI_INJECT);
	/* While blocked an event needs no kick: the IRET intercept will come. */
	nmi_raise(&n);
	CHECK_EQ(nmi_entry(&n, HANDLER, true), NMI_NONE);
	CHECK(n.pending && n.blocked);
}

static struct vcpu cpu(u64 rflags, u64 cr4, u64 dr7)
{
	struct vcpu v;
	memset(&v, 0, sizeof(v));
	v.rflags = 2 | rflags;
	v.cr4 = cr4;
	v.dr7 = 0x400 | dr7;
	return v;
}

#define DR7_EN(n) (1u << (2 * (n)))  /* Ln */
#define DR7_GEN(n) (2u << (2 * (n))) /* Gn */
#define DR7_RW(n, rw) ((u64)(rw) << (16 + 4 * (n)))
#define DR7_LEN(n, len) ((u64)(len) << (18 + 4 * (n)))

static void single_step_and_breakpoints(void)
{
	struct vm_access none = { ACCESS_NONE, 0, 0 }, out = { ACCESS_IO, 0x3F8, 1 };
	struct vcpu v = cpu(0, 0, 0);
	CHECK_EQ(debug_traps(&v, &none), 0);
	CHECK_EQ(debug_traps(&v, &out), 0);
	v = cpu(RFLAGS_TF, 0, 0);
	CHECK_EQ(debug_traps(&v, &none), DR6_BS);
	/* I/O breakpoint 0 on port 0x3F8: only with CR4.DE. */
	v = cpu(0, 0, DR7_EN(0) | DR7_RW(0, 2));
	v.dr[0] = 0x3F8;
	CHECK_EQ(debug_traps(&v, &out), 0);
	v.cr4 = CR4_DE;
	CHECK_EQ(debug_traps(&v, &out), DR6_B(0));
	CHECK_EQ(debug_traps(&v, &(struct vm_access){ ACCESS_IO, 0x3F9, 1 }), 0);
	CHECK_EQ(debug_traps(&v, &(struct vm_access){ ACCESS_READ, 0x3F8, 1 }), 0);
	/* Four bytes from an unaligned address: aligned down, matched by any overlap. */
	v.dr7 |= DR7_LEN(0, 3);
	v.dr[0] = 0x3F9;
	CHECK_EQ(debug_traps(&v, &(struct vm_access){ ACCESS_IO, 0x3FA, 2 }), DR6_B(0));
	CHECK_EQ(debug_traps(&v, &(struct vm_access){ ACCESS_IO, 0x3FC, 1 }), 0);
	CHECK_EQ(debug_traps(&v, &(struct vm_access){ ACCESS_IO, 0x3F6, 4 }), DR6_B(0));
	/* Data breakpoints: write-only (01) and read/write (11), eight bytes (10); G enables too. */
	v = cpu(RFLAGS_TF, 0, DR7_GEN(1) | DR7_RW(1, 1) | DR7_EN(3) | DR7_RW(3, 3) | DR7_LEN(3, 2));
	v.dr[1] = 0xFEE00300;
	v.dr[3] = 0x1000;
	struct vm_access rd = { ACCESS_READ, 0xFEE00300, 4 }, wr = { ACCESS_WRITE, 0xFEE00300, 4 };
	CHECK_EQ(debug_traps(&v, &rd), DR6_BS);
	CHECK_EQ(debug_traps(&v, &wr), DR6_BS | DR6_B(1));
	CHECK_EQ(debug_traps(&v, &(struct vm_access){ ACCESS_READ, 0x1007, 1 }), DR6_BS | DR6_B(3));
	CHECK_EQ(debug_traps(&v, &(struct vm_access){ ACCESS_WRITE, 0x1008, 1 }), DR6_BS);
	/* Disabled breakpoints and instruction breakpoints (00) raise nothing after it. */
	v = cpu(0, CR4_DE, DR7_RW(0, 2) | DR7_EN(2));
	v.dr[0] = v.dr[2] = 0x3F8;
	CHECK_EQ(debug_traps(&v, &out), 0);
}

static void trap_is_injected_with_dr6(void)
{
	struct vcpu v = cpu(RFLAGS_TF, 0, 0);
	v.dr6 = 0xFFFF0FF0;
	debug_after_insn(&v);
	CHECK(v.inject.valid);
	CHECK_EQ(v.inject.vector, 1);
	CHECK(!v.inject.has_error);
	CHECK_EQ(v.dr6, 0xFFFF0FF0 | DR6_BS);
	v = cpu(0, 0, 0);
	debug_after_insn(&v);
	CHECK(!v.inject.valid);
}

TESTS(nmi_tests) = {
	{ "nmi: delivered, then blocked until the handler's IRET; one latched, then delivered",
	    delivered_then_blocked_until_iret },
	{ "nmi: exits before the IRET ran keep it blocked", exit_before_the_iret_ran },
	{ "nmi: kept, not dropped, when another event is injected", kept_when_another_event_is_injected },
	{ "debug: single-step and breakpoint traps of an emulated instruction", single_step_and_breakpoints },
	{ "debug: the #DB trap is injected with DR6", trap_is_injected_with_dr6 },
	{ NULL, NULL },
};
