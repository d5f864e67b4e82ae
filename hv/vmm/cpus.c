/* The virtual CPUs, one per physical CPU Parapet runs on. */
#include "vmm/cpus.h"

static struct vcpu vcpus[MAX_CPUS];
static unsigned nvcpus;

struct vcpu *vcpu_new(void)
{
	if (nvcpus >= MAX_CPUS)
		return NULL;
	struct vcpu *v = &vcpus[nvcpus];
	v->id = nvcpus++;
	return v;
}

unsigned vmm_cpu_count(void) { return nvcpus; }
const u64 *vmm_cpu_exits(unsigned cpu) { return vcpus[cpu].exits; }
