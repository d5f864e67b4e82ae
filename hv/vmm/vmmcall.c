#include "vmm/vmmcall.h"
#include "vmm/vcpu.h"
#include "vmm/gmem.h"
#include "iommu/iommu.h"
#include "power/power.h"
#include "services/storage.h"
#include "core/log.h"
#include "core/string.h"

/* A guest buffer: at most one page, not crossing a page boundary, all guest RAM. */
static void *guest_buffer(u64 gpa, u64 len, u64 *err)
{
	if (len == 0 || len > VMMCALL_BUF_MAX || (gpa & (PAGE_SIZE - 1)) + len > PAGE_SIZE) {
		*err = VMMCALL_EINVAL;
		return NULL;
	}
	void *p = gmem_map(gpa, len);
	if (!p)
		*err = VMMCALL_EFAULT;
	return p;
}

static u64 log_read_call(struct vcpu *v)
{
	u64 err;
	void *buf = guest_buffer(v->gpr[RBX], v->gpr[RCX], &err);
	if (!buf)
		return err;
	u64 pos = v->gpr[RDX];
	v->gpr[RCX] = log_read(&pos, buf, v->gpr[RCX]);
	v->gpr[RDX] = pos;
	return VMMCALL_OK;
}

static u64 exit_counts_call(struct vcpu *v)
{
	u64 err, cpu = v->gpr[RDX];
	unsigned ncpu = vmm_cpu_count();
	if (cpu != VMMCALL_ALL_CPUS && cpu >= ncpu)
		return VMMCALL_EINVAL;
	u64 *buf = guest_buffer(v->gpr[RBX], v->gpr[RCX], &err);
	if (!buf)
		return err;
	unsigned n = v->gpr[RCX] / sizeof(u64);
	if (n > EXIT_NR)
		n = EXIT_NR;
	for (unsigned r = 0; r < n; r++) {
		u64 sum = 0;
		for (unsigned c = 0; c < ncpu; c++)
			if (cpu == VMMCALL_ALL_CPUS || c == cpu)
				sum += vmm_cpu_exits(c)[r];
		buf[r] = sum;
	}
	v->gpr[RCX] = n;
	v->gpr[RDX] = ncpu;
	return VMMCALL_OK;
}

void handle_vmmcall(struct vcpu *v)
{
	if (v->cpl != 0) {
		vcpu_inject_ud(v);
		return;
	}
	u64 ret;
	switch (v->gpr[RAX]) {
	case VMMCALL_VERSION:
		v->gpr[RBX] = VMMCALL_MAGIC;
		v->gpr[RCX] = VMMCALL_ABI;
		v->gpr[RDX] = v->id;
		ret = VMMCALL_OK;
		break;
	case VMMCALL_LOG_READ:
		iommu_poll(true); /* blocked DMA shows in the log the guest reads */
		ret = log_read_call(v);
		break;
	case VMMCALL_EXIT_COUNTS:
		ret = exit_counts_call(v);
		break;
	case VMMCALL_STATUS:
		iommu_poll(true);
		v->gpr[RBX] = (iommu_active() ? VMMCALL_STATUS_DMA_ISOLATION : 0) |
			      (storage_has_keys() ? VMMCALL_STATUS_KEYS : 0);
		v->gpr[RCX] = iommu_stats.faults;
		v->gpr[RDX] = iommu_stats.units;
		v->gpr[RSI] = power_stats.resumes;
		v->gpr[RDI] = power_stats.refused;
		ret = VMMCALL_OK;
		break;
	case VMMCALL_HANDOFF:
		ret = preboot_handoff(v);
		break;
	default:
		ret = VMMCALL_ENOSYS;
	}
	v->gpr[RAX] = ret;
	vcpu_skip(v, 3);
}
