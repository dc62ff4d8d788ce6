/*
 * rcu.c - the RCU flavour (urcu-bp: no thread registration needed), the
 * TSan model of grace periods, and batched retirement.
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
#include "internal.h"

#include <sched.h>
#include <stdlib.h>

#define RETIRE_BATCH 32

int wref__tsan_rcu_sync;

struct retire_batch {
	struct rcu_head rh;
	struct rcu_head *list; /* linked through next.next */
};

static inline struct rcu_head *head_next(struct rcu_head *h)
{
	return (struct rcu_head *)h->next.next;
}

static void run_batch(struct rcu_head *rh)
{
	struct retire_batch *b = caa_container_of(rh, struct retire_batch, rh);
	struct rcu_head *h, *next;
	wref__rcu_tsan_after_gp(rh);
	for (h = b->list; h; h = next) {
		next = head_next(h);
		h->func(h); /* each starts with wref__rcu_tsan_after_gp() */
	}
	free(b); /* not wref__free: no failure injection on this path */
	wref__rcu_flush_local(); /* anything those callbacks retired */
}

static _Atomic int forking;

void wref__rcu_fork_block(bool on)
{
	atomic_store(&forking, on);
}

bool wref__forking(void)
{
	return atomic_load(&forking);
}

/* an exiting thread past its statistics destructor shares wref__late, whose
 * in_submit counts such threads (issue 16) */
static struct wref__tstats *late_guard_try(void)
{
	struct wref__tstats *me = &wref__late;
	/* seq_cst: as in wref__fork_guard_try */
	atomic_fetch_add(&me->in_submit, 1);
	if (!atomic_load(&forking))
		return me;
	/* release: pairs with fork_prepare's load */
	atomic_fetch_sub_explicit(&me->in_submit, 1, memory_order_release);
	return NULL;
}

struct wref__tstats *wref__fork_guard_try(void)
{
	struct wref__tstats *me = &wref__tls_stats;
	/* fork_prepare must see our flag: on the registry */
	if (wref_unlikely(!me->registered) && !wref__stats_register())
		return late_guard_try();
	/* seq_cst, Dekker with fork_prepare: either it sees in_submit set
	 * and waits for us, or we see forking and stay out */
	atomic_store(&me->in_submit, 1);
	if (!atomic_load(&forking))
		return me;
	/* release: pairs with fork_prepare's load */
	atomic_store_explicit(&me->in_submit, 0, memory_order_release);
	return NULL;
}

struct wref__tstats *wref__fork_guard_enter(void)
{
	struct wref__tstats *me;
	while (!(me = wref__fork_guard_try()))
		sched_yield();
	return me;
}

void wref__fork_guard_leave(struct wref__tstats *me)
{
	if (wref_unlikely(me == &wref__late))
		/* release: pairs with fork_prepare's load */
		atomic_fetch_sub_explicit(&me->in_submit, 1,
					  memory_order_release);
	else
		/* release: pairs with fork_prepare's load */
		atomic_store_explicit(&me->in_submit, 0,
				      memory_order_release);
}

/* push the chain @first..@last onto @s's retired list (its owner pushes,
 * or any exiting thread onto wref__late: a CAS push, safe for several;
 * others only ever take the whole list) */
static void push_retired(struct wref__tstats *s, struct rcu_head *first,
			 struct rcu_head *last)
{
	/* relaxed: the CAS below re-reads */
	struct rcu_head *old = atomic_load_explicit(&s->retired,
						    memory_order_relaxed);
	do
		last->next.next = (struct cds_wfcq_node *)old;
	/* release: pairs with the acquire exchange of the flusher */
	while (!atomic_compare_exchange_weak_explicit(&s->retired, &old, first,
			memory_order_release, memory_order_relaxed));
}

/* Hand @list (taken inside the caller's fork guard) to call_rcu. */
static void hand_over(struct rcu_head *list)
{
	struct rcu_head *h, *next;
	struct retire_batch *b = malloc(sizeof *b);
	if (b) {
		b->list = list;
		wref__tsan_release(&b->rh);
		urcu_bp_call_rcu(&b->rh, run_batch);
	} else {
		for (h = list; h; h = next) { /* out of memory: one by one */
			next = head_next(h);
			urcu_bp_call_rcu(h, h->func);
		}
	}
}

/* Hand @s's retired list to call_rcu.  While a fork is in progress the
 * caller may be inside a read-side section, or be liburcu's call_rcu
 * thread, either of which fork_prepare waits for: then the list stays
 * where it is for the next hand-over (taking it and pushing it back
 * walked it, once per batch: quadratic while the fork lasted), unless
 * @wait (a caller that holds no read lock and is not a liburcu thread: an
 * exiting thread, wref_shutdown).  The list is taken inside the fork
 * guard, so wref_shutdown can wait for a hand-over in progress. */
static void submit(struct wref__tstats *s, bool wait)
{
	struct wref__tstats *me = wait ? wref__fork_guard_enter()
				       : wref__fork_guard_try();
	if (!me)
		return;
	struct rcu_head *list = wref__rcu_steal(s);
	if (list)
		hand_over(list);
	wref__fork_guard_leave(me);
}

struct rcu_head *wref__rcu_steal(struct wref__tstats *s)
{
	/* acq_rel: the acquire pairs with the release CAS that pushed each
	 * head; the release with a later stealer's exchange (retire_all),
	 * so it sees the in_submit we stored before taking the list */
	return atomic_exchange_explicit(&s->retired, NULL,
					memory_order_acq_rel);
}

void wref__rcu_flush_exiting(struct wref__tstats *s)
{
	submit(s, true);
}

void wref__rcu_flush_wait(void)
{
	wref__tls_stats.nretired = 0;
	submit(&wref__tls_stats, true);
}

struct rcu_head *wref__rcu_chain(struct rcu_head *list, struct rcu_head *more)
{
	struct rcu_head *t = list;
	if (!list)
		return more;
	while (head_next(t))
		t = head_next(t);
	t->next.next = (struct cds_wfcq_node *)more;
	return list;
}

void wref__rcu_adopt(struct rcu_head *list)
{
	struct rcu_head *h, *next;
	for (h = list; h; h = next) {
		next = head_next(h);
		wref__call_rcu(h, h->func);
	}
}

void wref__rcu_flush_local(void)
{
	struct wref__tstats *s = &wref__tls_stats;
	s->nretired = 0;
	submit(s, false);
}

void wref__call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
	struct wref__tstats *s = &wref__tls_stats;
	/* TSan: what this thread wrote before retiring @head happens-before
	 * the callback (paired with wref__rcu_tsan_after_gp()) */
	wref__tsan_release(head);
	head->func = fn;
	/* registered, so wref_shutdown() can find it */
	if (wref_unlikely(!s->registered) && !wref__stats_register()) {
		/* an exiting thread past its statistics destructor: no later
		 * hand-over of its own, so now (or by the next one, or by
		 * wref_shutdown, if a fork is in progress) */
		push_retired(&wref__late, head, head);
		submit(&wref__late, false);
		return;
	}
	push_retired(s, head, head);
	if (++s->nretired >= RETIRE_BATCH)
		wref__rcu_flush_local();
}
