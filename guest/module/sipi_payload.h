/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Layout of the page the SIPI attack (sipi.c) starts a processor in, shared by sipi.c and the
 * real-mode code in sipi_payload.S. Offsets are from the start of the page, which is also the
 * start of the code: a STARTUP IPI with vector V starts the processor in real mode at
 * CS = V << 8, IP = 0, i.e. at physical V << 12.
 */
#ifndef PARAPET_SIPI_PAYLOAD_H
#define PARAPET_SIPI_PAYLOAD_H

/*
 * Physical page of the payload. On x86-64 Linux reserves the whole first MiB of RAM at boot
 * and never hands it to the page allocator, and its own AP trampoline sits at the top of the
 * usable low memory (just below the EBDA), so a page in the middle of it is free after boot.
 */
#define PARAPET_SIPI_PAGE 0x70000
#define PARAPET_SIPI_VECTOR (PARAPET_SIPI_PAGE >> 12)

/* Code: at most this many bytes, from offset 0. */
#define PARAPET_SIPI_CODE_MAX 0x200

/* Results: 32-bit words the payload stores, zeroed by the sender before it starts the CPU. */
#define PARAPET_SIPI_CPUID_DONE 0x200 /* PARAPET_SIPI_CPUID_MAGIC once ECX is stored */
#define PARAPET_SIPI_ECX 0x204        /* ECX of CPUID 0x80000001 (bit 2: SVM) */
#define PARAPET_SIPI_EBX 0x208        /* EBX after VMMCALL VERSION (the magic under Parapet) */
#define PARAPET_SIPI_EDX 0x20c        /* EDX after it (the vcpu index under Parapet) */
#define PARAPET_SIPI_FAULT 0x210      /* a PARAPET_SIPI_FAULT_* marker if an exception came */
#define PARAPET_SIPI_FAULT_IP 0x214   /* IP of the faulting instruction */
#define PARAPET_SIPI_DONE 0x218       /* PARAPET_SIPI_DONE_MAGIC, stored last */
#define PARAPET_SIPI_ECX1 0x21c       /* ECX of CPUID 1 (bit 27: OSXSAVE; CR4 is 0 here) */
/* 0x220: s3race.c's counter. */
#define PARAPET_SIPI_MODE 0x224      /* set by the sender: PARAPET_SIPI_MODE_NMI for the NMI test */
#define PARAPET_SIPI_NMIS 0x228      /* NMIs the payload's handler took */
#define PARAPET_SIPI_NMI_DEPTH 0x22c /* the most NMI handlers it was in at once */
#define PARAPET_SIPI_NMI_NOW 0x230   /* the NMI handlers it is in now (the payload's own) */

#define PARAPET_SIPI_CPUID_MAGIC 0x43505544   /* "CPUD" */
#define PARAPET_SIPI_DONE_MAGIC 0x444F4E45    /* "DONE" */
#define PARAPET_SIPI_FAULT_VMMCALL 0x564D4D46 /* "VMMF": the VMMCALL faulted (#UD) */
#define PARAPET_SIPI_FAULT_OTHER 0x464C5421   /* "FLT!": another instruction faulted */
#define PARAPET_SIPI_MODE_NMI 0x494D4E21      /* "!NMI" */

/* The payload's own interrupt vector table (vectors 0-31) and the IDTR image that loads it. */
#define PARAPET_SIPI_IDTR 0x280
#define PARAPET_SIPI_IVT 0x300
#define PARAPET_SIPI_IVT_VECTORS 32

/* Its stack grows down from the end of the page. */
#define PARAPET_SIPI_STACK_TOP 0x1000

#endif /* PARAPET_SIPI_PAYLOAD_H */
