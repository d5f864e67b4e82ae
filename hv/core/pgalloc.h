/* Physical page allocator over the hypervisor's own memory region. Pages are never freed:
 * everything is allocated once at start, so no guest action can exhaust it. */
#ifndef PARAPET_PGALLOC_H
#define PARAPET_PGALLOC_H

#include "core/types.h"

void pgalloc_init(u64 base, u64 end);
/* n contiguous zeroed 4 KiB pages; panics when the region is exhausted (a build-time sizing error). */
u64 pgalloc(unsigned n);
u64 pgalloc_used(void);
u64 pgalloc_free(void);

#endif
