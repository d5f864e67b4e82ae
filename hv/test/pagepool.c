#include "test/pagepool.h"
#include <stdlib.h>
#include <string.h>

static u8 *pool;
static unsigned used;

static u64 pool_alloc(void *ctx)
{
	(void)ctx;
	if (used == PAGEPOOL_PAGES)
		return 0;
	memset(pool + 4096ull * used, 0, 4096);
	return PAGEPOOL_BASE + 4096ull * used++;
}

static void *pool_ptr(void *ctx, u64 pa)
{
	(void)ctx;
	if (pa < PAGEPOOL_BASE || pa >= PAGEPOOL_BASE + 4096ull * PAGEPOOL_PAGES || (pa & 0xFFF))
		abort();
	return pool + (pa - PAGEPOOL_BASE);
}

const struct pt_alloc pagepool = { pool_alloc, pool_ptr, NULL };

u64 pagepool_reset(void)
{
	if (!pool)
		pool = aligned_alloc(4096, 4096ull * PAGEPOOL_PAGES);
	used = 0;
	return pool_alloc(NULL);
}

unsigned pagepool_used(void)
{
	return used;
}
