/*
 * rcu.h - the RCU flavour wrapper of rcu.c (urcu-bp read-side sections,
 * batched call_rcu). Internal, never installed; split from internal.h (issue
 * 14 item 4).
 */
#ifndef WREF_RCU_H
#define WREF_RCU_H

#include "common.h"

/* ---- rcu.c: RCU flavour wrapper ---------------------------------------
 * urcu-bp: threads register lazily on their first read lock and are
 * unregistered at thread exit (rule 10). */
WREF_HIDDEN extern int wref__tsan_rcu_sync; /* TSan model of grace periods */
static inline void wref__rcu_lock(void)
{
	urcu_bp_read_lock();
}
static inline void wref__rcu_unlock(void)
{
	/* TSan: every read-side section happens-before every grace period
	 * that ends after it (paired with the acquire in wref__call_rcu's
	 * callbacks). */
	wref__tsan_release(&wref__tsan_rcu_sync);
	urcu_bp_read_unlock();
}
/* retired heads per batch handed to call_rcu, and batches that may wait on
 * a thread's home after their grace period (rcu.c, "hand-back") */
#define WREF__RETIRE_BATCH 32
#define WREF__HOME_CAP 256
/* heads freed from the thread's home per retirement */
#define WREF__HOME_STEP 2
/* a batch this late after its hand-over goes back to its thread */
#define WREF__RCU_LATE_NS 50000000u
WREF_HIDDEN extern _Atomic uint64_t wref__rcu_late_ns; /* tests set it */
/* Runs @fn(@head) after a grace period, batched per thread: on liburcu's
 * call_rcu thread, or, if the grace period ended late, back on this
 * thread, a few heads per later retirement or all at its next
 * wref__rcu_flush_local or exit (rcu.c, "hand-back").  @fn must only free
 * memory: it may run inside any library call that retires. */
WREF_HIDDEN void wref__call_rcu(struct rcu_head *head,
				void (*fn)(struct rcu_head *));
/* hand this thread's partial batch of retired memory to call_rcu (left
 * for later while a fork is in progress) */
WREF_HIDDEN void wref__rcu_flush_local(void);
/* the same, waiting for a fork in progress: only for a thread holding no
 * read lock and no library lock (wref_shutdown) */
WREF_HIDDEN void wref__rcu_flush_wait(void);
/* shutdown, after an RCU barrier: free every thread's batches that came
 * back after their grace period (rcu.c, "hand-back") */
WREF_HIDDEN void wref__rcu_drain_all(void);
/* make a list of retired heads (taken from other threads: shutdown, the
 * fork child) this thread's own pending retirements */
WREF_HIDDEN void wref__rcu_adopt(struct rcu_head *list);
#define wref__rcu_tsan_after_gp(h)                                         \
	do {                                                               \
		wref__tsan_acquire(&wref__tsan_rcu_sync);                  \
		wref__tsan_acquire(h);                                     \
	} while (0)

#endif /* WREF_RCU_H */
