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
 */
#include "rcu.h"
#include "thread.h"

#include <stdlib.h>

#define RETIRE_BATCH 32

int wref__tsan_rcu_sync;

struct retire_batch {
	struct rcu_head rh;
	struct rcu_head *list; /* linked through next.next */
};

static void run_batch(struct rcu_head *rh)
{
	struct retire_batch *b = caa_container_of(rh, struct retire_batch, rh);
	struct rcu_head *h, *next;
	wref__rcu_tsan_after_gp(rh);
	for (h = b->list; h; h = next) {
		next = wref__retired_next(h);
		h->func(h); /* each starts with wref__rcu_tsan_after_gp() */
	}
	free(b); /* malloc'd by hand_over */
	wref__rcu_flush_local(); /* anything those callbacks retired */
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

/* Hand @list (taken inside the caller's fork guard) to call_rcu. */
static void hand_over(struct rcu_head *list)
{
	struct rcu_head *h, *next;
	/* the process malloc, not wref__alloc: the test build's failure
	 * injection stays off this path (its fallback is tested by none) */
	struct retire_batch *b = malloc(sizeof *b);
	if (b) {
		b->list = list;
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
	if (list)
		hand_over(list);
	wref__fork_guard_leave(me);
}

/* thread.c's exit step: an exiting thread hands its retired list to
 * call_rcu, waiting for a fork in progress (it gets no other chance) */
static void flush_exiting(struct wref__thread *t)
{
	submit(t, true);
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
	submit(t, false);
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
	if (++t->nretired >= RETIRE_BATCH)
		wref__rcu_flush_local();
}
