/*
 * The guest's NMIs, held as its processor would hold them (Intel SDM vol. 3 §6.7.1 "Handling
 * Multiple NMIs", AMD APM vol. 2 §8.2.2): while an NMI handler runs, further NMIs are blocked
 * until the next IRET has executed; one NMI that arrives meanwhile is latched and delivered
 * then; more are lost. Parapet's own NMIs (vmm/apic.c, apic_kick) never reach this.
 *
 * The backend delivers an NMI by event injection, which does not tell the processor that an
 * NMI handler runs (SVM without virtual NMIs; QEMU's TCG sets no NMI mask for an injected NMI
 * either). So the blocking is kept here, and the backend gives the three places where it ends
 * or delivery becomes possible:
 *   - the guest's IRET, intercepted while blocked (SVM intercept vector 3 bit 20): the exit
 *     comes before the IRET executes, so blocking ends at the first later entry whose RIP is
 *     elsewhere (the IRET ran, or faulted into a handler; either unblocks on hardware);
 *   - right after that IRET, when an NMI is latched: the backend runs that one instruction and
 *     exits after it (SVM: RFLAGS.TF and the #DB intercept; the single-step trap follows an
 *     IRET that began with TF set, whatever the IRET loads into RFLAGS);
 *   - right after another event is delivered: an exit the moment the guest can take the NMI
 *     (Parapet's own NMI to this CPU, taken after the injected event: nmi_entry's NMI_KICK).
 * The interrupt shadow does not hold a guest NMI back: the processor took the NMI at that
 * boundary, and holding it through `STI; HLT` would leave the guest halted without it. Nothing
 * but an intercepted IRET is ever stepped: a step over HLT would not end before an interrupt
 * woke it (and QEMU delivers that trap to the guest directly, past the #DB intercept).
 */
#ifndef PARAPET_NMI_H
#define PARAPET_NMI_H

#include "core/types.h"

struct vnmi {
	bool pending; /* one NMI latched, not yet delivered */
	bool blocked; /* delivered; its handler has not returned with IRET yet */
	bool iret;    /* the IRET at iret_rip was intercepted and is let run */
	bool kicked;  /* an exit after the next injected event is already asked for */
	u64 iret_rip;
};

/* What the backend does on this entry. */
enum nmi_action {
	NMI_NONE,
	NMI_INJECT, /* inject an NMI (the state now has it in service) */
	NMI_STEP,   /* run the instruction at RIP (the IRET) and exit right after it */
	NMI_KICK,   /* exit as soon as the event injected now has been delivered */
};

/* A guest NMI arrived. */
void nmi_raise(struct vnmi *n);

/* The guest executes IRET at rip (the intercept: the IRET has not run yet). */
void nmi_iret(struct vnmi *n, u64 rip);

/* Before every entry, at RIP rip; `event` when another event is injected on this entry. */
enum nmi_action nmi_entry(struct vnmi *n, u64 rip, bool event);

/* Whether the backend intercepts IRET on this entry. */
static inline bool nmi_iret_intercept(const struct vnmi *n)
{
	return n->blocked && !n->iret;
}

#endif
