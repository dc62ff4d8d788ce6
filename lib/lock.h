/*
 * lock.h - the futex mutex and futex wrappers of lock.c. Internal, never
 * installed; split from internal.h (issue 14 item 4).
 */
#ifndef WREF_LOCK_H
#define WREF_LOCK_H

#include "common.h"

/* ---- lock.c: a tiny futex mutex (per control block, never global) ---- */
typedef struct {
	_Atomic uint32_t v; /* 0 free, 1 locked, 2 locked with waiters */
} wref__lock_t;
WREF_HIDDEN void wref__lock_slow(wref__lock_t *l);
WREF_HIDDEN void wref__unlock_slow(wref__lock_t *l);
static inline void wref__lock(wref__lock_t *l)
{
	uint32_t z = 0;
	/* acquire: pairs with the release in wref__unlock() */
	if (!atomic_compare_exchange_strong_explicit(&l->v, &z, 1,
			memory_order_acquire, memory_order_relaxed))
		wref__lock_slow(l);
}
static inline void wref__unlock(wref__lock_t *l)
{
	/* release: pairs with the acquire in wref__lock() */
	if (atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2)
		wref__unlock_slow(l);
}
WREF_HIDDEN int wref__futex_wait(_Atomic uint32_t *addr, uint32_t val);
/* the same with a relative timeout (NULL: none) */
struct timespec;
WREF_HIDDEN int wref__futex_wait_rel(_Atomic uint32_t *addr, uint32_t val,
				     const struct timespec *rel);
WREF_HIDDEN void wref__futex_wake(_Atomic uint32_t *addr, int n);

#endif /* WREF_LOCK_H */
