/*
 * lock.c - futex slow paths for the per-control-block mutex and the
 * executor's wake-ups (Drepper, "Futexes are tricky", mutex #3).
 */
#include "lock.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

int wref__futex_wait_rel(_Atomic uint32_t *addr, uint32_t val,
			 const struct timespec *rel)
{
	return (int)syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, rel,
			    NULL, 0);
}

int wref__futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
	return wref__futex_wait_rel(addr, val, NULL);
}

void wref__futex_wake(_Atomic uint32_t *addr, int n)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

void wref__lock_slow(wref__lock_t *l)
{
	/* a short spin first: critical sections are a few list operations */
	for (int i = 0; i < 64; i++) {
		uint32_t z = 0;
		/* acquire: pairs with the release in wref__unlock() */
		if (atomic_compare_exchange_weak_explicit(&l->v, &z, 1,
				memory_order_acquire, memory_order_relaxed))
			return;
		caa_cpu_relax();
	}
	/* acquire: pairs with the release in wref__unlock() */
	while (atomic_exchange_explicit(&l->v, 2, memory_order_acquire) != 0)
		wref__futex_wait(&l->v, 2);
}

void wref__unlock_slow(wref__lock_t *l)
{
	wref__futex_wake(&l->v, 1);
}
