/*
 * thread.h - the per-thread state of thread.c (statistics, retired memory,
 * fork guard). Internal, never installed; split from internal.h (issue 14
 * item 4).
 */
#ifndef WREF_THREAD_H
#define WREF_THREAD_H

#include "common.h"

#include <stdlib.h>

/* ---- thread.c: per-thread state ---------------------------------------
 * One struct wref__thread per thread that used the library (its TLS), on a
 * registry that wref_stats, wref_shutdown and the fork handlers walk: the
 * thread's statistics, the memory it retired (rcu.c) and its fork-guard
 * flag.  Registered on first use (rule 10), unregistered at thread exit. */
enum {
	WREF_ST_CREATED,
	WREF_ST_DIED,
	WREF_ST_CB_ALLOC,
	WREF_ST_CB_FREE,
	WREF_ST_QUEUED,
	WREF_ST_RUN,
	WREF_ST_N
};
/*
 * A thread's home for its retired memory after the grace period (rcu.c,
 * "hand-back"): the call_rcu thread pushes each of the thread's late
 * batches back here instead of freeing it, and the thread frees them
 * itself, a few heads per later retirement (home_step).  On the heap, not
 * in the TLS block: a batch in
 * flight may outlive its thread.  One ref for the thread (dropped at its
 * exit, or by the fork child for the threads it lost) and one per batch in
 * flight.
 */
struct wref__home {
	/* batches past their grace period (their rcu_heads, linked through
	 * next.next): pushed by the call_rcu thread, taken by exchange */
	_Atomic(struct rcu_head *) ready;
	_Atomic uint32_t nready; /* about how many: the push's cap */
	_Atomic uint32_t refs;
	/* the thread is gone: batches coming back are freed where they
	 * land (seq_cst, a Dekker with the push: rcu.c home_return) */
	_Atomic bool gone;
};
/* drop a ref to @h; the last frees it */
static inline void wref__home_put(struct wref__home *h)
{
	/* acq_rel: every user's accesses happen-before the free */
	if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
		free(h);
}

struct wref__thread {
	/* statistics: only this thread writes its slots (wref__late's: by
	 * RMW); wref_stats() sums snapshots */
	_Atomic uint64_t stats[WREF_ST_N];
	/* memory this thread retired, not yet handed to call_rcu (rcu.c),
	 * linked through rcu_head.next.next; wref_shutdown() and the fork
	 * child may take it from another thread */
	_Atomic(struct rcu_head *) retired;
	unsigned nretired; /* owner only: the batch threshold */
	/* where its batches come back after their grace period (rcu.c);
	 * NULL until its first hand-over, or if that found no memory.  Set
	 * once by the owner; read by the shutdown under the registry's lock
	 * (the thread's ref keeps it until the thread left the registry) */
	_Atomic(struct wref__home *) home;
	/* owner only (and the fork child): batches taken from the home,
	 * being freed a few heads at a time (rcu.c home_step) */
	struct rcu_head *own_ready;
	bool in_step; /* owner only: inside home_step */
	/* fork guard: inside call_rcu() or an executor queue operation;
	 * fork() waits until no thread is (liburcu cannot finish an
	 * enqueue, a splice or a dequeue that a vanished thread began) */
	_Atomic int in_submit;
	struct cds_list_head node; /* the registry, under its lock */
	bool registered;
	bool exited; /* its exit ran: later calls use wref__late */
};
WREF_HIDDEN extern __thread struct wref__thread wref__tls_thread
	__attribute__((tls_model("initial-exec")));
/* The block of threads whose exit already ran (a later pthread-key
 * destructor calls the library): never a thread's TLS, always registered;
 * counters by atomic RMW, in_submit a count of threads. */
WREF_HIDDEN extern struct wref__thread wref__late;
/* register this thread's block; false (nothing done) if the thread is
 * exiting and must use wref__late */
WREF_HIDDEN bool wref__thread_register(void);
/* the step run at a registered thread's exit before it leaves the
 * registry (rcu.c: hand over its retired memory); set once, at load */
WREF_HIDDEN void wref__thread_set_exit_step(void (*fn)(struct wref__thread *));
/* pthread_create(@th, NULL, @fn, @arg) with every signal blocked in the
 * new thread: the library's own threads (the executor, the tiers' timer)
 * take no signal meant for the application.  pthread_create's result. */
WREF_HIDDEN int wref__thread_start(pthread_t *th, void *(*fn)(void *),
				   void *arg);
WREF_HIDDEN void wref__stat_add_late(int i, uint64_t n);
static inline void wref__stat_add(int i, uint64_t n)
{
	struct wref__thread *t = &wref__tls_thread;
	if (wref_unlikely(!t->registered) && !wref__thread_register()) {
		wref__stat_add_late(i, n);
		return;
	}
	/* relaxed load+store, not an RMW: only this thread writes its slot;
	 * wref_stats() reads it with relaxed loads (a snapshot) */
	atomic_store_explicit(&t->stats[i],
		atomic_load_explicit(&t->stats[i], memory_order_relaxed) + n,
		memory_order_relaxed);
}
/* retired lists: linked through rcu_head.next.next */
static inline struct rcu_head *wref__retired_next(struct rcu_head *h)
{
	return (struct rcu_head *)h->next.next;
}
/* @list with @more appended */
WREF_HIDDEN struct rcu_head *wref__retired_chain(struct rcu_head *list,
						 struct rcu_head *more);
/* shutdown: take every registered thread's batches that came back after
 * their grace period (home->ready), chained */
WREF_HIDDEN struct rcu_head *wref__threads_take_ready(void);
/* take @t's retired list (any thread's), without handing it over */
WREF_HIDDEN struct rcu_head *wref__thread_take_retired(struct wref__thread *t);
/* shutdown: take every thread's retired list, after waiting for owners
 * that are handing theirs over right now */
WREF_HIDDEN struct rcu_head *wref__threads_take_retired(void);
/* Fork guard.  Bracket an operation on a liburcu queue that a fork() must
 * not cut in half (call_rcu, the executor's queue): the fork handler waits
 * until no thread is inside one.  _try returns NULL while a fork is in
 * progress (the caller must then not touch the queue); _enter waits for
 * the fork, so only a thread holding no read lock and no library lock may
 * use it.  Not re-entrant; never around user code. */
WREF_HIDDEN struct wref__thread *wref__fork_guard_try(void);
WREF_HIDDEN struct wref__thread *wref__fork_guard_enter(void);
WREF_HIDDEN void wref__fork_guard_leave(struct wref__thread *me);
/* the fork flag: set by the prepare handler, cleared after the fork */
WREF_HIDDEN void wref__fork_block(bool on);
WREF_HIDDEN bool wref__forking(void);
/* fork.c's steps: wait until no thread is inside a guard (after the flag
 * is set); hold the registry across fork(); release it in the parent; in
 * the child, fold the vanished threads' counters and return what they had
 * retired (for wref__rcu_adopt once call_rcu works in the child) */
WREF_HIDDEN void wref__threads_wait_guards(void);
WREF_HIDDEN void wref__threads_fork_lock(void);
WREF_HIDDEN void wref__threads_fork_parent(void);
WREF_HIDDEN struct rcu_head *wref__threads_fork_child(void);

#endif /* WREF_THREAD_H */
