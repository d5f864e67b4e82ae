/*
 * The debug traps of an instruction Parapet emulated (Intel SDM vol. 3 §18.2-18.3, AMD APM
 * vol. 2 §13.1). Hardware raises #DB after an instruction that began with RFLAGS.TF set (a
 * single-step trap: DR6.BS), and after one whose data or I/O access matched an enabled
 * breakpoint (DR6.Bn). An instruction that exits to Parapet and is completed there (CPUID,
 * RDMSR/WRMSR, IN/OUT/INS/OUTS, VMMCALL, an MMIO access) must do the same: vmm_dispatch asks
 * here after every handler that completed one. One that faulted raises no trap.
 *
 * DR7 (for each n: Ln/Gn enable bits 2n/2n+1, R/Wn bits 16+4n, LENn bits 18+4n):
 *   R/W 00 instruction fetch (a fault before the instruction: the hardware's, not here),
 *       01 data writes, 10 I/O reads and writes (CR4.DE=1 only), 11 data reads and writes;
 *   LEN 00 one byte, 01 two, 11 four, 10 eight; the address is aligned down to the length.
 */
#ifndef PARAPET_DEBUG_H
#define PARAPET_DEBUG_H

#include "vmm/vcpu.h"

#define DR6_B(n) (1u << (n)) /* breakpoint n matched */
#define DR6_BS (1u << 14)    /* single step */
#define RFLAGS_TF (1ull << 8)
#define RFLAGS_RF (1ull << 16) /* resume: no instruction breakpoint on this instruction */

/* The DR6 bits the instruction just completed raises with the access it made (ACCESS_NONE if
 * none); 0 when it raises no #DB. From v's RFLAGS, CR4, DR7 and DR0-DR3. */
u32 debug_traps(const struct vcpu *v, const struct vm_access *a);

/* After a handler completed the guest's instruction: the #DB trap, if there is one (DR6 gets
 * the bits, the event is injected). */
void debug_after_insn(struct vcpu *v);

#endif
