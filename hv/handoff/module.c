/* Finding the policy record among the Multiboot modules, by its magic, and taking it in: the
 * record is copied into hypervisor memory and the module's bytes (keys) wiped from guest RAM. */
#include "handoff/module.h"
#include "services/storage.h"
#include "iommu/iommu.h"
#include "core/log.h"
#include "core/panic.h"
#include "core/string.h"

static struct policy policy;
static bool installed;

const char *handoff_install(void *rec, u64 len)
{
	if (installed)
		return "a policy is already in force";
	const char *err = len > POLICY_MAX_SIZE ? "record larger than 64 KiB" : policy_parse(rec, len, &policy);
	memset(rec, 0, len);
	__asm__ volatile("" : : "r"(rec) : "memory");
	if (!err && policy.nkeys && !iommu_active() && !(policy.flags & POLICY_FLAG_ALLOW_NO_IOMMU)) {
		memset(&policy, 0, sizeof(policy));
		err = "it carries keys and DMA isolation is off (no usable IOMMU: any bus-master device could read "
		      "them); a record made with parapet policy --allow-no-iommu accepts that";
	}
	__asm__ volatile("" : : "r"(&policy) : "memory");
	if (err)
		return err;
	if (policy.nkeys && !iommu_active())
		LOG("handoff: WARNING: DMA isolation is OFF and the record allows it (--allow-no-iommu): any bus-master "
		    "device can read the keys and every decrypted sector\n");
	installed = true;
	storage_init(&policy);
	return NULL;
}

void handoff_take_policy(const struct boot_info *bi)
{
	bool found = false;
	for (unsigned i = 0; i < bi->nmods; i++) {
		const struct boot_module *m = &bi->mods[i];
		u64 len = m->end - m->start;
		u8 *p = phys_ptr(m->start);
		if (!policy_is_record(p, len)) {
			LOG("handoff: module %u (%lu bytes) is not a policy record; ignored\n", i, len);
			continue;
		}
		if (found)
			panic("handoff: more than one policy record (module %u)", i);
		const char *err = handoff_install(p, len);
		if (err)
			panic("handoff: policy record (module %u) refused: %s", i, err);
		found = true;
		LOG("handoff: policy record: %u keys, %u drives, %u ranges; module wiped\n", policy.nkeys,
		    policy.ndrives, policy.nranges);
	}
	if (!found) {
		LOG("handoff: no policy record; every drive passes untouched\n");
		storage_init(&policy);
	}
}
