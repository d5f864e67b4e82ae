/* Fake physical pages for host tests of table builders: page n lives at pool + n * 4096 and has
 * the "physical" address PAGEPOOL_BASE + n * 4096; a pointer outside the pool aborts. */
#ifndef PARAPET_TEST_PAGEPOOL_H
#define PARAPET_TEST_PAGEPOOL_H

#include "mm/pagetable.h"

#define PAGEPOOL_PAGES 256
#define PAGEPOOL_BASE 0x800000000ull

extern const struct pt_alloc pagepool;

/* Empty the pool (allocating it the first time); returns a fresh zeroed page, the root. */
u64 pagepool_reset(void);
/* Pages handed out since the last reset. */
unsigned pagepool_used(void);

#endif
