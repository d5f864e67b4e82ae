/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the sources of parapet_guest.ko: the VMMCALL interface (main.c), the raw local
 * APIC access and per-CPU probes (cpus.c), the INIT/SIPI attack tool (sipi.c), the handoff
 * (handoff.c) and the DMA attack tools (dma.c).
 */
#ifndef PARAPET_GUEST_H
#define PARAPET_GUEST_H

#include <linux/proc_fs.h>
#include <linux/types.h>

#define PARAPET_MAGIC 0x54505250UL /* "PRPT" */
#define PARAPET_ABI_MAJOR 1
#define PARAPET_ABI_MINOR(abi) ((abi)&0xffffUL)

#define PARAPET_FN_VERSION 0
#define PARAPET_FN_LOG_READ 1
#define PARAPET_FN_EXIT_COUNTS 2
#define PARAPET_FN_STATUS 4

#define PARAPET_ALL_CPUS 0xFFFFFFFFUL

/* Exit reason indices of EXIT_COUNTS that the module reads itself. */
#define PARAPET_EXIT_CPUID 0

/* RSI and RDI: more results of some functions (STATUS, ABI 1.4); callers zero what they do not set. */
struct parapet_regs {
	unsigned long rax, rbx, rcx, rdx, rsi, rdi;
};

/* main.c */
extern unsigned long parapet_abi; /* RCX of VERSION at load: major << 16 | minor */
void parapet_vmmcall(struct parapet_regs *r);

/* cpus.c: local APIC registers by their xAPIC offset (APIC_ID, APIC_LDR, ...) */
bool parapet_apic_x2apic(void);
u32 parapet_apic_read(u32 reg);
void __iomem *parapet_apic_mmio(void);
bool parapet_cpu_recorded(unsigned int cpu, u32 *apic_id, u32 *ldr);
int parapet_cpus_init(struct proc_dir_entry *dir);
void parapet_cpus_exit(void);

/* sipi.c */
int parapet_sipi_init(struct proc_dir_entry *dir);
/* The payload copied to a mapped page, and what it did there (" ran=..."). */
void parapet_sipi_plant(void *page);
int parapet_sipi_describe(const void *page, char *buf, size_t size);
bool parapet_sipi_code_intact(const void *page);

/* wakepage.c: /proc/parapet/wakepage */
int parapet_wakepage_init(struct proc_dir_entry *dir);

/* handoff.c */
int parapet_handoff_init(struct proc_dir_entry *dir);

/* dma.c */
int parapet_dma_init(struct proc_dir_entry *dir);

/* s3race.c: /proc/parapet/s3race, the FACS waking-vector race during S3. */
int parapet_s3race_init(struct proc_dir_entry *dir);
void parapet_dma_exit(void);

/* conform.c: /proc/parapet/conform, the CPU conformance probes (also without a hypervisor). */
int parapet_conform_init(struct proc_dir_entry *dir);
void parapet_conform_exit(void);

#endif /* PARAPET_GUEST_H */
