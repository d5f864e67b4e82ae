#include "core/pgalloc.h"
#include "core/panic.h"
#include "core/spinlock.h"
#include "core/string.h"

static u64 next, limit, start;
static struct spinlock lock;

void pgalloc_init(u64 base, u64 end)
{
	start = next = ALIGN_UP(base, PAGE_SIZE);
	limit = end;
}

u64 pgalloc(unsigned n)
{
	spin_lock(&lock);
	u64 pa = next, size = (u64)n * PAGE_SIZE;
	if (n == 0 || pa + size > limit)
		panic("pgalloc: out of hypervisor memory (%u pages wanted, %lu free)", n, (limit - next) / PAGE_SIZE);
	next += size;
	spin_unlock(&lock);
	memset((void *)pa, 0, size); /* physical memory is identity-mapped in the host */
	return pa;
}

u64 pgalloc_used(void)
{
	return next - start;
}
u64 pgalloc_free(void)
{
	return limit - next;
}
