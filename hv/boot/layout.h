/* Sizes of Parapet's memory. The link-time layout (boot code at 1 MiB, the rest at
 * 0xFFFFFFFF80000000 + its load address) is in link.ld. */
#ifndef PARAPET_LAYOUT_H
#define PARAPET_LAYOUT_H

#define HV_REGION_SIZE  (16 * 1024 * 1024)   /* hidden hypervisor memory at the top of RAM */
#define HV_STACK_SIZE   (16 * 1024)
#define MAX_CPUS        16

#endif
