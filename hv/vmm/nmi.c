/* The guest's NMI blocking and the one latched NMI: see nmi.h. */
#include "vmm/nmi.h"
#include "vmm/vcpu.h"

void nmi_raise(struct vnmi *n)
{
	n->pending = true; /* a second one while one is latched is lost, as on hardware */
}

void nmi_iret(struct vnmi *n, u64 rip)
{
	if (n->blocked) {
		n->iret = true;
		n->iret_rip = rip;
	}
}

enum nmi_action nmi_entry(struct vnmi *n, u64 rip, bool event)
{
	if (n->iret && rip != n->iret_rip)
		n->blocked = n->iret = false; /* the IRET has run (or faulted into a handler) */
	else if (n->iret && event)
		n->iret = false; /* the event comes before the IRET: intercept it again */
	if (!event)
		n->kicked = false;
	if (!n->pending)
		return NMI_NONE;
	if (event) {
		/* One kick per run of entries with events: if the processor took Parapet's NMI before
		 * the event (the event comes back to be injected again), the NMI waits for the next
		 * exit rather than the two chasing each other. */
		if (n->blocked || n->kicked)
			return NMI_NONE;
		n->kicked = true;
		return NMI_KICK;
	}
	if (!n->blocked) {
		n->pending = false;
		n->blocked = true;
		return NMI_INJECT;
	}
	return n->iret ? NMI_STEP : NMI_NONE; /* else the IRET intercept comes first */
}

void handle_iret(struct vcpu *v)
{
	nmi_iret(&v->nmi, v->rip);
}
