/*
 * The guest-callable interface (documented in docs/vmmcall.md). The guest executes VMMCALL
 * (0F 01 D9) at CPL 0 with RAX = function; RAX returns 0 or a negative error. From any
 * other privilege level VMMCALL raises #UD, as on a machine without Parapet.
 */
#ifndef PARAPET_VMMCALL_H
#define PARAPET_VMMCALL_H

#define VMMCALL_VERSION \
	0 /* out: RBX = VMMCALL_MAGIC, RCX = VMMCALL_ABI,
                                    RDX = the calling CPU's index (ABI 1.1) */
#define VMMCALL_LOG_READ \
	1 /* in: RBX = buffer gpa, RCX = length, RDX = stream offset;
                                    out: RCX = bytes copied, RDX = next offset */
#define VMMCALL_EXIT_COUNTS \
	2 /* in: RBX = buffer gpa, RCX = length, RDX = cpu or VMMCALL_ALL_CPUS;
                                    out: RCX = counters written, RDX = number of CPUs */
#define VMMCALL_HANDOFF \
	3 /* preboot guest only, on the boot CPU, once (ABI 1.2):
                                    in: RBX = policy record gpa, RCX = its length;
                                    success does not return: the target OS boots */
#define VMMCALL_STATUS \
	4 /* (ABI 1.3) out: RBX = VMMCALL_STATUS_* flags, RCX = DMA requests
                                    the IOMMU blocked, RDX = IOMMU units in use;
                                    (ABI 1.4) RSI = S3 resumes, RDI = sleeps refused */

#define VMMCALL_STATUS_DMA_ISOLATION (1ull << 0) /* DMA translation on in every IOMMU */
#define VMMCALL_STATUS_KEYS (1ull << 1)          /* a policy with keys is in force */

#define VMMCALL_MAGIC 0x54505250ull /* "PRPT" */
#define VMMCALL_ABI 0x00010004ull   /* major 1, minor 4 */
#define VMMCALL_ALL_CPUS 0xFFFFFFFFull
#define VMMCALL_BUF_MAX 4096 /* one buffer never crosses a 4 KiB page */

#define VMMCALL_OK 0ull
#define VMMCALL_ENOSYS ((unsigned long long)-1) /* unknown function */
#define VMMCALL_EINVAL ((unsigned long long)-2) /* bad argument */
#define VMMCALL_EFAULT ((unsigned long long)-3) /* bad guest address */
#define VMMCALL_EPERM ((unsigned long long)-4)  /* not allowed now (or from this CPU) */

struct vcpu;
/* VMMCALL HANDOFF (handoff/preboot.c). */
unsigned long long preboot_handoff(struct vcpu *v);

#endif
