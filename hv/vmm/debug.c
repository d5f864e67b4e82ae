/* Debug traps after an emulated instruction: see debug.h. */
#include "vmm/debug.h"
#include "core/x86.h"

/* Whether a breakpoint of type R/W `rw` sees an access of kind k. */
static bool sees(unsigned rw, enum access_kind k, u64 cr4)
{
	switch (rw) {
	case 1:
		return k == ACCESS_WRITE;
	case 2:
		return k == ACCESS_IO && (cr4 & CR4_DE);
	case 3:
		return k == ACCESS_READ || k == ACCESS_WRITE;
	default:
		return false; /* instruction breakpoints fault before the instruction */
	}
}

u32 debug_traps(const struct vcpu *v, const struct vm_access *a)
{
	static const u8 len_bytes[4] = { 1, 2, 8, 4 };
	u32 bits = (v->rflags & RFLAGS_TF) ? DR6_BS : 0;
	for (unsigned n = 0; n < 4 && a->kind != ACCESS_NONE; n++) {
		unsigned rw = (v->dr7 >> (16 + 4 * n)) & 3, bytes = len_bytes[(v->dr7 >> (18 + 4 * n)) & 3];
		u64 lo = v->dr[n] & ~(u64)(bytes - 1);
		if (((v->dr7 >> (2 * n)) & 3) && sees(rw, a->kind, v->cr4) && a->addr < lo + bytes &&
		    lo < a->addr + a->size)
			bits |= DR6_B(n);
	}
	return bits;
}

void debug_after_insn(struct vcpu *v)
{
	u32 bits = debug_traps(v, &v->access);
	if (bits)
		vcpu_inject_db(v, bits);
}
