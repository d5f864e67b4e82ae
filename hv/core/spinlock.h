/* Test-and-set spinlock for state shared between CPUs (log, counters, allocator). */
#ifndef PARAPET_SPINLOCK_H
#define PARAPET_SPINLOCK_H

#include "core/types.h"

struct spinlock {
	volatile u32 locked;
};

static inline void spin_lock(struct spinlock *l)
{
	while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
		while (l->locked)
			__asm__ volatile("pause");
}

/* Take the lock only if it is free; true when taken. */
static inline bool spin_trylock(struct spinlock *l)
{
	return !__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE);
}

static inline void spin_unlock(struct spinlock *l)
{
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

#endif
