/* Link-time layout: the 32-bit boot code runs where the loader put it (LOAD_PHYS); the rest
 * of the image runs at KERNEL_VMA + offset, mapped to wherever its physical copy lives. */
#ifndef PARAPET_LAYOUT_H
#define PARAPET_LAYOUT_H

#define LOAD_PHYS   0x100000
#define KERNEL_VMA  0xFFFFFFFF80000000
#define HV_REGION_SIZE  (16 * 1024 * 1024)   /* hidden hypervisor memory at the top of RAM */
#define HV_STACK_SIZE   (16 * 1024)
#define MAX_CPUS        16

#endif
