/*
 * The architectural state a processor starts from, built once here and loaded by the backend
 * (struct vmm_backend.load): after INIT, at the reset vector, at a STARTUP vector, and at a
 * fresh start (Parapet's first entry, the handoff, the S3 waking vector, Linux's 32-bit entry).
 * Hardware-free: host-tested.
 */
#ifndef PARAPET_VSTATE_H
#define PARAPET_VSTATE_H

#include "vmm/vcpu.h"
#include "guest/bios.h"

/*
 * Everything INIT sets (Intel SDM vol. 3 table 10-1, AMD APM vol. 2 §14.1.3); segments in
 * struct vseg's form. Not here because it is always zero after INIT: the other general
 * registers, CR2, DR0-DR3, the syscall MSRs, KERNEL_GS_BASE, the pending event and interrupt
 * shadow; the backend clears them. x87/SSE state and MTRRs are kept, as INIT keeps them
 * (XCR0 goes back to x87 only).
 */
struct vstate {
	struct vseg seg[SEG_NR];
	struct vseg ldtr, tr;
	struct vseg gdtr, idtr; /* base and limit only */
	u64 cr0, cr3, cr4;
	u64 efer; /* as the guest sees it */
	u64 dr6, dr7, rflags, rip, rsp;
	u64 rdx, rsi;
	u64 pat;
};

/* After INIT, real mode at sel:ip with CS's base `base` (sel * 16, or the reset vector's
 * 0xFFFF0000). `signature` is CPUID 1 EAX, which EDX holds after INIT. */
void vstate_init(struct vstate *s, u32 signature, u16 sel, u64 base, u16 ip);

/* The BSP after INIT: the reset vector F000:FFF0, CS base 0xFFFF0000. */
void vstate_reset_vector(struct vstate *s, u32 signature);

/* An AP's STARTUP with `vector`: real mode at (vector << 8):0000. */
void vstate_startup(struct vstate *s, u32 signature, u8 vector);

/* A fresh start at g: the INIT state with caches on (as firmware leaves them), then real mode
 * at cs:ip with the stack under 0000:7C00, Linux's 32-bit entry (guest/linux.h), or flat 32-bit
 * protected mode (an ACPI X_Firmware_Waking_Vector). */
void vstate_start(struct vstate *s, u32 signature, const struct guest_start *g);

#endif
