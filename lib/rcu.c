/*
 * rcu.c - the RCU flavour (urcu-bp: no thread registration needed), the
 * TSan model of grace periods, and batched retirement (each thread's
 * retired list lives in its struct wref__thread, lib/thread.c).
 *
 * Each call_rcu() costs an enqueue and often a futex wake of liburcu's
 * call_rcu thread; retiring objects one by one made "create, weakly
 * reference, release" ~10x slower than the allocation itself.  Retired
 * heads are therefore collected per thread and handed to call_rcu in
 * batches of RETIRE_BATCH.  A thread's partial batch is handed over when it
 * calls wref_flush() or wref_shutdown(), when it exits, and by the executor
 * before it sleeps; until then at most RETIRE_BATCH - 1 dead objects per
 * thread wait for reclamation.
 *
 * Hand-back: a batch whose grace period ended late, WREF__RCU_LATE_NS or
 * more after its hand-over, is not freed by liburcu's call_rcu thread: it
 * pushes the batch back onto the retiring thread's home (thread.h, one
 * CAS), and that thread frees it, WREF__HOME_STEP heads per later
 * retirement (no single call pays for a burst), all at its next
 * wref__rcu_flush_local (wref_flush) or its exit.  Lateness is the sign
 * that the call_rcu thread does not keep up: freeing everything every
 * thread retired, it gets 1/(threads + 1) of the CPUs when threads
 * outnumber cores, and retired memory grew for as long as the load lasted
 * (32 threads on 2 CPUs, a map under 10% updates: 89 MB after 1 s, 280 MB
 * after 4 s, a page fault per 150 updates; every batch was 33-260 ms late,
 * against 8-33 ms with 2 threads).  Handed back, its work per batch is one
 * push, and the frees keep pace with the retirements (a thread that
 * retires much frees as much; 27 MB at 2 s and at 6 s).  On time, the
 * call_rcu thread still frees: where cores are free that costs the
 * retiring threads nothing.  At most HOME_CAP batches wait on a home;
 * past that, and for a thread that is gone, the batch is freed where it
 * lands.  A thread that stops retiring keeps at most HOME_CAP batches until
 * its next wref_flush() or its exit.
 */
#include "rcu.h"
#include "thread.h"

#include <limits.h>
#include <stdlib.h>
#include <time.h>

#define RETIRE_BATCH WREF__RETIRE_BATCH
#define HOME_CAP WREF__HOME_CAP

int wref__tsan_rcu_sync;

struct retire_batch {
	struct rcu_head rh;     /* on call_rcu's queue, then on home->ready */
	struct rcu_head *list;  /* linked through next.next */
	struct wref__home *home; /* NULL: freed on the call_rcu thread */
	uint64_t t0;             /* CLOCK_MONOTONIC ns at the hand-over */
};

/* a batch that comes back this late after its hand-over goes home (see
 * the top of this file); tests set it (0: every batch goes home) */
_Atomic uint64_t wref__rcu_late_ns = WREF__RCU_LATE_NS;

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* free @rh's batch: its heads' callbacks, then the batch */
static void free_batch(struct rcu_head *rh)
{
	struct retire_batch *b = caa_container_of(rh, struct retire_batch, rh);
	struct rcu_head *h, *next;
	wref__rcu_tsan_after_gp(rh);
	for (h = b->list; h; h = next) {
		next = wref__retired_next(h);
		h->func(h); /* each starts with wref__rcu_tsan_after_gp() */
	}
	if (b->home)
		wref__home_put(b->home);
	free(b); /* malloc'd by hand_over */
}

/* free a list of batches (rcu_heads linked through next.next); returns
 * how many */
static uint32_t free_batches(struct rcu_head *list)
{
	uint32_t n = 0;
	struct rcu_head *rh, *next;
	for (rh = list; rh; rh = next, n++) {
		next = wref__retired_next(rh);
		free_batch(rh);
	}
	return n;
}

/* @b passed its grace period (call_rcu thread): back to its home, unless
 * the home is full or its thread gone */
static bool home_return(struct retire_batch *b)
{
	struct wref__home *h = b->home;
	/* relaxed: a cap, not a count anything depends on */
	if (atomic_load(&h->gone) ||
	    atomic_load_explicit(&h->nready, memory_order_relaxed) >= HOME_CAP)
		return false;
	atomic_fetch_add_explicit(&h->nready, 1, memory_order_relaxed);
	/* our own ref until the re-read of gone below: once pushed, the
	 * batch and its ref are the taker's, and the owner may free it and
	 * exit, dropping the last one (formal-model/handback.pml,
	 * BROKEN_PUSH_NO_REF).  relaxed: the batch's ref keeps it now */
	atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
	/* relaxed: the CAS re-reads */
	struct rcu_head *old = atomic_load_explicit(&h->ready,
						    memory_order_relaxed);
	do
		b->rh.next.next = (struct cds_wfcq_node *)old;
	/* seq_cst: the push, then the load of gone below, against the
	 * exiting owner's store of gone, then its exchange (flush_exiting):
	 * one of the two takes the batch.  Its release half pairs with the
	 * taker's acquire exchange (home_step) */
	while (!atomic_compare_exchange_weak(&h->ready, &old, &b->rh));
	if (atomic_load(&h->gone))
		free_batches(atomic_exchange(&h->ready, NULL));
	wref__home_put(h);
	return true;
}

static void run_batch(struct rcu_head *rh)
{
	struct retire_batch *b = caa_container_of(rh, struct retire_batch, rh);
	wref__rcu_tsan_after_gp(rh); /* TSan: hand_over's writes to @b */
	/* relaxed: a threshold; no memory depends on it */
	if (b->home && mono_ns() - b->t0 >= atomic_load_explicit(
			&wref__rcu_late_ns, memory_order_relaxed) &&
	    home_return(b))
		return;
	free_batch(rh);
	wref__rcu_flush_local(); /* anything those callbacks retired */
}

/* Free up to @n of the heads that came back to @t's home (all: UINT_MAX).
 * The owner takes its home's whole list and frees it from its private
 * chain a few heads per retirement (wref__call_rcu): a burst of batches
 * coming back after a long grace period costs no single call more than
 * that.  Not reentrant (a callback that retired would find the batch it
 * runs from half freed): a nested call does nothing. */
static void home_step(struct wref__thread *t, unsigned n)
{
	if (t->in_step)
		return;
	t->in_step = true;
	while (n) {
		struct rcu_head *rh = t->own_ready;
		if (!rh) {
			/* relaxed: our own field */
			struct wref__home *h = atomic_load_explicit(
					&t->home, memory_order_relaxed);
			/* relaxed: a peek; the exchange orders */
			if (!h || !atomic_load_explicit(&h->ready,
							memory_order_relaxed))
				break;
			/* acquire: pairs with the release half of
			 * home_return's push */
			rh = t->own_ready = atomic_exchange_explicit(
					&h->ready, NULL, memory_order_acquire);
		}
		struct retire_batch *b = caa_container_of(rh,
					struct retire_batch, rh);
		wref__rcu_tsan_after_gp(rh);
		while (n && b->list) {
			struct rcu_head *h = b->list;
			b->list = wref__retired_next(h);
			h->func(h); /* starts with wref__rcu_tsan_after_gp() */
			n--;
		}
		if (!b->list) {
			t->own_ready = wref__retired_next(rh);
			/* relaxed: the cap's estimate */
			atomic_fetch_sub_explicit(&b->home->nready, 1,
						  memory_order_relaxed);
			free_batch(rh); /* the batch and its home ref */
		}
	}
	t->in_step = false;
}

/* this thread's home, made on first use; NULL without memory */
static struct wref__home *home_get(struct wref__thread *t)
{
	/* relaxed: our own field */
	struct wref__home *h = atomic_load_explicit(&t->home,
						    memory_order_relaxed);
	if (h || t->exited)
		return h;
	/* the process malloc, as the batches' (hand_over) */
	h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	atomic_init(&h->refs, 1); /* the thread's */
	/* release: pairs with the acquire load of the shutdown's walk
	 * (wref__threads_take_ready) */
	atomic_store_explicit(&t->home, h, memory_order_release);
	return h;
}

/* Push the chain @first..@last onto @t's retired list (its owner pushes,
 * or any exiting thread onto wref__late: a CAS push, safe for several;
 * others only ever take the whole list).  A Treiber push by hand, not
 * urcu/lfstack.h: the nodes are liburcu's own struct rcu_head, whose link
 * is a cds_wfcq_node, not the cds_lfs_node lfstack needs. */
static void push_retired(struct wref__thread *t, struct rcu_head *first,
			 struct rcu_head *last)
{
	/* relaxed: the CAS below re-reads */
	struct rcu_head *old = atomic_load_explicit(&t->retired,
						    memory_order_relaxed);
	do
		last->next.next = (struct cds_wfcq_node *)old;
	/* release: pairs with the acquire exchange of the taker
	 * (wref__thread_take_retired) */
	while (!atomic_compare_exchange_weak_explicit(&t->retired, &old, first,
			memory_order_release, memory_order_relaxed));
}

/* Hand @list (taken inside the caller's fork guard) to call_rcu; it comes
 * back to @home (NULL: freed on the call_rcu thread). */
static void hand_over(struct rcu_head *list, struct wref__home *home)
{
	struct rcu_head *h, *next;
	/* the process malloc, not wref__alloc: the test build's failure
	 * injection stays off this path (its fallback is tested by none) */
	struct retire_batch *b = malloc(sizeof *b);
	if (b) {
		b->list = list;
		b->home = home;
		b->t0 = home ? mono_ns() : 0;
		if (home)
			/* relaxed: the caller's ref keeps it */
			atomic_fetch_add_explicit(&home->refs, 1,
						  memory_order_relaxed);
		wref__tsan_release(&b->rh);
		urcu_bp_call_rcu(&b->rh, run_batch);
	} else {
		for (h = list; h; h = next) { /* out of memory: one by one */
			next = wref__retired_next(h);
			urcu_bp_call_rcu(h, h->func);
		}
	}
}

/* Hand @t's retired list to call_rcu.  While a fork is in progress the
 * caller may be inside a read-side section, or be liburcu's call_rcu
 * thread, either of which the fork handler waits for: then the list stays
 * where it is for the next hand-over (taking it and pushing it back
 * walked it, once per batch: quadratic while the fork lasted), unless
 * @wait (a caller that holds no read lock and is not a liburcu thread: an
 * exiting thread, wref_shutdown).  The list is taken inside the fork
 * guard, so wref_shutdown can wait for a hand-over in progress. */
static void submit(struct wref__thread *t, bool wait)
{
	struct wref__thread *me = wait ? wref__fork_guard_enter()
				       : wref__fork_guard_try();
	if (!me)
		return;
	struct rcu_head *list = wref__thread_take_retired(t);
	/* only a thread's own list comes back to it: the shutdown's and the
	 * fork child's adopted lists go through wref__call_rcu, wref__late's
	 * has no owner; an exiting thread's home is gone */
	if (list)
		hand_over(list, t == &wref__tls_thread ? home_get(t) : NULL);
	wref__fork_guard_leave(me);
}

/* thread.c's exit step: an exiting thread hands its retired list to
 * call_rcu, waiting for a fork in progress (it gets no other chance), and
 * frees what came back; its batches in flight will free themselves */
static void flush_exiting(struct wref__thread *t)
{
	/* relaxed: our own field */
	struct wref__home *h = atomic_load_explicit(&t->home,
						    memory_order_relaxed);
	if (h)
		/* seq_cst: see home_return */
		atomic_store(&h->gone, true);
	submit(t, true);
	/* after the store of gone (seq_cst, see home_return): what came
	 * back, and what was already ours */
	home_step(t, UINT_MAX);
}

__attribute__((constructor)) static void retire_init(void)
{
	wref__thread_set_exit_step(flush_exiting);
}

void wref__rcu_flush_wait(void)
{
	wref__tls_thread.nretired = 0;
	submit(&wref__tls_thread, true);
}

void wref__rcu_adopt(struct rcu_head *list)
{
	struct rcu_head *h, *next;
	for (h = list; h; h = next) {
		next = wref__retired_next(h);
		wref__call_rcu(h, h->func);
	}
}

void wref__rcu_flush_local(void)
{
	struct wref__thread *t = &wref__tls_thread;
	t->nretired = 0;
	home_step(t, UINT_MAX);
	submit(t, false);
}

void wref__rcu_drain_all(void)
{
	home_step(&wref__tls_thread, UINT_MAX);
	free_batches(wref__threads_take_ready());
}

void wref__call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
	struct wref__thread *t = &wref__tls_thread;
	/* TSan: what this thread wrote before retiring @head happens-before
	 * the callback (paired with wref__rcu_tsan_after_gp()) */
	wref__tsan_release(head);
	head->func = fn;
	/* registered, so wref_shutdown() can find it */
	if (wref_unlikely(!t->registered) && !wref__thread_register()) {
		/* an exiting thread past its exit step: no later hand-over
		 * of its own, so now (or by the next one, or by
		 * wref_shutdown, if a fork is in progress) */
		push_retired(&wref__late, head, head);
		submit(&wref__late, false);
		return;
	}
	push_retired(t, head, head);
	if (++t->nretired >= RETIRE_BATCH) {
		t->nretired = 0;
		submit(t, false);
	}
	/* more freed than retired: a backlog shrinks */
	home_step(t, WREF__HOME_STEP);
}
