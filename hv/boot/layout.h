/* Sizes of Parapet's memory. The link-time layout (boot code at 1 MiB, the rest at
 * 0xFFFFFFFF80000000 + its load address) is in link.ld. */
#ifndef PARAPET_LAYOUT_H
#define PARAPET_LAYOUT_H

#define HV_REGION_SIZE (16 * 1024 * 1024) /* hidden hypervisor memory at the top of RAM */
#define HV_STACK_SIZE (16 * 1024)
#define MAX_CPUS 16

/* The host's GDT descriptors, the same at every CPU's start (entry.S, ap_trampoline.S) and
 * afterwards (core/cpu.c): selector 0x08 64-bit code, 0x10 flat data. */
#define GDT_CODE64 0x00AF9A000000FFFF
#define GDT_DATA 0x00CF92000000FFFF

#endif
