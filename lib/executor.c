/*
 * executor.c - the deferred executor: one thread draining a wait-free MPSC
 * queue (liburcu wfcqueue).  Death callbacks, finalizers and the library's
 * own deferred work (value releases, evictions) run here, never under a
 * library lock and never on the releasing thread.  wref_flush() is a
 * barrier through the same queue.  Inline mode runs items on the thread
 * that queued them, at the outermost return from library code.
 */
#include "executor.h"
#include "lock.h"
#include "rcu.h"
#include "thread.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * Cost per callback (issue 18): a producer's hand-off is its fork guard,
 * one exchange on the queue's tail and a load of ex_sleeping; it touches
 * no line the executor writes per item.  The executor takes the whole
 * queue in one splice per batch (one fork guard per batch, not per item)
 * and counts what it took itself, so nothing shared is written per item
 * on either side.  It wakes only from a sleep, and it sleeps only after
 * polling the queue a short while (EX_POLL).
 */
#define EX_LINE __attribute__((aligned(64)))

/* producers exchange the tail, the executor splices from the head: apart */
static struct {
	struct __cds_wfcq_head h;
} EX_LINE q_head_line;
static struct {
	struct cds_wfcq_tail t;
} EX_LINE q_tail_line;
#define q_head (q_head_line.h)
#define q_tail (q_tail_line.t)

/* the executor's own line, written per item by it alone */
static struct {
	/* counted items (not flush barriers) it took off the queue and has
	 * not finished running: the rest of its batch and the one running */
	_Atomic unsigned long unrun;
	/* set while it takes a batch, before the count covers it */
	_Atomic int claim;
	/* the rest of the current batch, a NULL-terminated chain through
	 * node.next (executor only; a fork child takes it over) */
	struct wref__work *next;
} EX_LINE ex_batch;

static pthread_mutex_t ex_mutex = PTHREAD_MUTEX_INITIALIZER; /* start/stop */
static pthread_cond_t ex_stopped = PTHREAD_COND_INITIALIZER;
static bool ex_stopping; /* under ex_mutex: a stop is joining the thread */
static pthread_t ex_thread;
static _Atomic bool ex_running;
static _Atomic bool ex_stop;
static _Atomic uint32_t ex_seq;      /* futex word: bumped on wake-ups */
static _Atomic uint32_t ex_sleeping; /* the executor is (about to be) asleep */
static _Atomic int exec_mode = WREF_EXEC_THREAD;

/* counted items queued inline (inline mode, or no executor could be
 * started) on any thread and not yet finished: with the executor's own
 * count and the queue, what wref_init's -EBUSY looks at */
static _Atomic unsigned long inl_pending;

static __thread bool tls_in_cb __attribute__((tls_model("initial-exec")));
/* counted inline items this thread is running (nested); fork child */
static __thread unsigned tls_inl_running
	__attribute__((tls_model("initial-exec")));
/* inline mode: this thread's queued items, FIFO */
__thread struct wref__work *wref__tls_inl_head
	__attribute__((tls_model("initial-exec")));
#define tls_inl_head wref__tls_inl_head
static __thread struct wref__work **tls_inl_tail
	__attribute__((tls_model("initial-exec")));

__attribute__((constructor)) static void executor_init(void)
{
	__cds_wfcq_init(&q_head, &q_tail);
}

bool wref__in_callback(void)
{
	return tls_in_cb;
}

bool wref__exec_inline(void)
{
	/* relaxed: set by wref_init before use */
	return atomic_load_explicit(&exec_mode, memory_order_relaxed) ==
	       WREF_EXEC_INLINE;
}

static void barrier_run(struct wref__work *w);
static bool exec_busy(void);

static bool counted(const struct wref__work *w)
{
	return w->run != barrier_run; /* flush barriers are not work */
}

static struct wref__work *work_next(const struct wref__work *w)
{
	struct cds_wfcq_node *n = w->node.next;
	return n ? caa_container_of(n, struct wref__work, node) : NULL;
}

/* run @w (which may free it) as user code; true if it was counted */
static bool run_item(struct wref__work *w)
{
	bool was = tls_in_cb, c = counted(w);
	tls_in_cb = true;
	w->run(w);
	tls_in_cb = was;
	if (c)
		wref__stat_add(WREF_ST_RUN, 1);
	return c;
}

/*
 * Take everything queued as the new batch: one splice and one fork guard
 * for the lot.  The batch is walked once inside the guard, waiting for
 * producers that exchanged the tail but have not linked their node yet, so
 * that the executor then runs it as a plain chain, outside any guard, and
 * a fork child finds it whole at any point.  False if the queue is empty.
 */
static bool take_batch(void)
{
	struct __cds_wfcq_head h;
	struct cds_wfcq_tail t;
	struct cds_wfcq_node *n;
	unsigned long count = 0;

	__cds_wfcq_init(&h, &t);
	struct wref__thread *g = wref__fork_guard_enter();
	/* relaxed: ordered before the splice's exchanges (full barriers);
	 * a reader that finds the queue emptied by them sees it (the fence
	 * in exec_busy()) */
	atomic_store_explicit(&ex_batch.claim, 1, memory_order_relaxed);
	bool got = __cds_wfcq_splice_blocking(&h, &t, &q_head, &q_tail) !=
		   CDS_WFCQ_RET_SRC_EMPTY;
	if (got) {
		for (n = __cds_wfcq_first_blocking(&h, &t); n;
		     n = __cds_wfcq_next_blocking(&h, &t, n)) {
			struct wref__work *w = caa_container_of(n,
					struct wref__work, node);
			/* TSan: pairs with the release in to_executor() */
			wref__tsan_acquire(w);
			count += counted(w);
		}
		/* the last node's next is NULL: nothing links after it */
		ex_batch.next = caa_container_of(h.node.next,
						 struct wref__work, node);
		/* relaxed: the executor is its only writer (the batch
		 * before was finished); published by the release below */
		atomic_store_explicit(&ex_batch.unrun, count,
				      memory_order_relaxed);
	}
	/* release: pairs with the acquire in exec_busy() */
	atomic_store_explicit(&ex_batch.claim, 0, memory_order_release);
	wref__fork_guard_leave(g);
	return got;
}

/* Before a sleep, poll the queue a while (~5 us here): a producer's next
 * death usually comes within a microsecond or two, and a futex wait and
 * wake cost both threads several (and the executor's rcu flush before each
 * sleep).  Every 32nd turn yields instead: where threads outnumber cores
 * the poll hands its CPU to a thread waiting for it (the producer, the
 * call_rcu thread) rather than burn it (measured on 2 CPUs: 5-10% faster
 * end to end than a pause-only poll).  True if work came. */
#define EX_POLL 128
static bool ex_poll(void)
{
	for (int i = 1; i <= EX_POLL; i++) {
		if (i % 32 == 0)
			sched_yield();
		else
			caa_cpu_relax();
		if (!cds_wfcq_empty(&q_head, &q_tail))
			return true;
	}
	return false;
}

static void *ex_main(void *unused)
{
	(void)unused;
	tls_in_cb = true; /* wref_flush() from here would wait on itself */
	for (;;) {
		if (!take_batch()) {
			/* acquire: pairs with the release store in
			 * wref__executor_stop() */
			if (atomic_load_explicit(&ex_stop,
						 memory_order_acquire))
				break;
			if (ex_poll())
				continue;
			wref__rcu_flush_local(); /* before a long sleep */
			/* seq_cst: read before ex_sleeping is stored (the
			 * futex word's value the wake must change) */
			uint32_t seq = atomic_load(&ex_seq);
			/* seq_cst store, then a full fence before the
			 * emptiness check (plain loads): Dekker with
			 * wake_executor() (tail exchanged, then ex_sleeping
			 * read) */
			atomic_store(&ex_sleeping, 1);
			atomic_thread_fence(memory_order_seq_cst);
			if (cds_wfcq_empty(&q_head, &q_tail) &&
			    !atomic_load(&ex_stop))
				wref__futex_wait(&ex_seq, seq);
			atomic_store(&ex_sleeping, 0);
			continue;
		}
		struct wref__work *w;
		while ((w = ex_batch.next) != NULL) {
			/* before the item runs: a fork in it must find the
			 * rest of the batch, without it */
			ex_batch.next = work_next(w);
			if (run_item(w)) /* outside the fork guard: user code */
				/* release: pairs with the acquire in
				 * exec_busy(); the executor is the only
				 * writer */
				atomic_store_explicit(&ex_batch.unrun,
					atomic_load_explicit(&ex_batch.unrun,
						memory_order_relaxed) - 1,
					memory_order_release);
		}
	}
	return NULL;
}

/* under ex_mutex */
static bool start_locked(void)
{
	/* relaxed: under ex_mutex */
	if (atomic_load_explicit(&ex_running, memory_order_relaxed))
		return true;
	/* the executor takes no signals meant for the application */
	bool ok = wref__thread_start(&ex_thread, ex_main, NULL) == 0;
	if (ok)
		/* release: pairs with the acquire in to_executor() */
		atomic_store_explicit(&ex_running, true, memory_order_release);
	return ok;
}

/*
 * Start the executor unless it runs, without ever blocking on ex_mutex:
 * the caller may be a dying thread inside cb_kill's RCU read-side section,
 * and fork_prepare holds ex_mutex while it waits for a grace period, which
 * waits for that section (issue 16 item 3).  If the mutex is taken, the
 * request is left in ex_start_wanted and its holder starts the executor
 * when it unlocks (ex_unlock).  False only if this call failed to create
 * the thread.
 */
static _Atomic bool ex_start_wanted;

static bool start_executor(void)
{
	bool ok = true;
	/* seq_cst: Dekker with ex_unlock() (request stored, then the trylock,
	 * against the unlock, then the request read): either the trylock
	 * succeeds or the holder sees the request */
	atomic_store(&ex_start_wanted, true);
	while (atomic_load(&ex_start_wanted)) {
		if (pthread_mutex_trylock(&ex_mutex) != 0)
			break; /* its holder starts it on unlock */
		atomic_store(&ex_start_wanted, false);
		ok = start_locked();
		pthread_mutex_unlock(&ex_mutex);
		/* seq_cst: the unlock, then the request read (see above) */
		atomic_thread_fence(memory_order_seq_cst);
	}
	return ok;
}

/* unlock ex_mutex and serve a start requested meanwhile */
static void ex_unlock(void)
{
	pthread_mutex_unlock(&ex_mutex);
	/* seq_cst: Dekker with start_executor() (see there) */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&ex_start_wanted))
		start_executor();
}

/* a producer, its items queued: wake the executor if it sleeps (or is
 * about to) */
static void wake_executor(void)
{
	/* seq_cst, Dekker with ex_main() (ex_sleeping stored, then the
	 * queue read): the caller's tail exchange is a full barrier; either
	 * the executor sees our items or we see it asleep.  The exchange:
	 * one waker per sleep */
	if (atomic_load(&ex_sleeping) && atomic_exchange(&ex_sleeping, 0)) {
		atomic_fetch_add(&ex_seq, 1);
		wref__futex_wake(&ex_seq, 1);
	}
}

/* wake the executor whatever it does (a stop) */
static void kick_executor(void)
{
	/* seq_cst: after the caller's store of ex_stop; the executor reads
	 * ex_seq before it looks at ex_stop and sleeps */
	atomic_fetch_add(&ex_seq, 1);
	wref__futex_wake(&ex_seq, 1);
}

static void inline_push(struct wref__work *w)
{
	w->node.next = NULL;
	if (!tls_inl_head)
		tls_inl_tail = &tls_inl_head;
	*tls_inl_tail = w;
	tls_inl_tail = (struct wref__work **)&w->node.next;
}

void wref__inline_drain(void)
{
	struct wref__work *w;
	while ((w = tls_inl_head) != NULL) {
		tls_inl_head = work_next(w);
		bool c = counted(w);
		tls_inl_running += c;
		run_item(w);
		tls_inl_running -= c;
		if (c)
			/* seq_cst: exec_busy reads it between its fences */
			atomic_fetch_sub(&inl_pending, 1);
	}
}

/* Work queued while a fork is in progress: a thread that finds the fork
 * flag set must not touch the queue (fork_prepare may be waiting for it to
 * leave a read-side section), so it pushes the item here with one CAS, which
 * a fork cannot cut in half.  Linked through node.next; LIFO.  A Treiber
 * push by hand, not urcu/lfstack.h: an item's only link is its
 * cds_wfcq_node (it is queued on the wfcqueue otherwise), not the
 * cds_lfs_node lfstack needs, and a second link would grow every item. */
static _Atomic(struct wref__work *) parked;

static void park(struct wref__work *w)
{
	/* relaxed: the CAS re-reads */
	struct wref__work *old = atomic_load_explicit(&parked,
						      memory_order_relaxed);
	do
		w->node.next = (struct cds_wfcq_node *)old;
	/* seq_cst: Dekker with the fork handlers (flag cleared, then this
	 * list taken) against us (item pushed, then the flag read) */
	while (!atomic_compare_exchange_weak(&parked, &old, w));
}

/* after items were queued: wake the executor, or start one */
static void queued(void)
{
	wake_executor();
	/* seq_cst, Dekker with wref__executor_stop(): the enqueue's xchg is a
	 * full barrier; either the stopper sees our items after clearing
	 * ex_running and starts a new executor, or we see it cleared here */
	if (!atomic_load(&ex_running))
		start_executor();
}

/* false if @w was parked instead */
static bool enqueue(struct wref__work *w)
{
	cds_wfcq_node_init(&w->node);
	struct wref__thread *g = wref__fork_guard_try();
	if (!g) {
		park(w);
		return false;
	}
	cds_wfcq_enqueue(&q_head, &q_tail, &w->node);
	wref__fork_guard_leave(g);
	queued();
	return true;
}

/* queue the private queue @h/@t's items in one splice; false if they
 * were parked instead (in order) */
static bool enqueue_all(struct __cds_wfcq_head *h, struct cds_wfcq_tail *t)
{
	struct wref__thread *g = wref__fork_guard_try();
	if (!g) {
		struct cds_wfcq_node *n;
		while ((n = __cds_wfcq_dequeue_blocking(h, t)) != NULL)
			park(caa_container_of(n, struct wref__work, node));
		return false;
	}
	__cds_wfcq_splice_blocking(&q_head, &q_tail, h, t);
	wref__fork_guard_leave(g);
	queued();
	return true;
}

/* take everything parked, oldest first */
static struct wref__work *take_parked(void)
{
	/* seq_cst: the other side of the Dekker in park() (see there) */
	struct wref__work *w = atomic_exchange(&parked, NULL), *fifo = NULL,
			  *next;
	for (; w; w = next) { /* LIFO to FIFO */
		next = work_next(w);
		w->node.next = (struct cds_wfcq_node *)fifo;
		fifo = w;
	}
	return fifo;
}

/* queue what was parked, in order; called once the fork flag is clear */
static void unpark(void)
{
	for (;;) {
		struct wref__work *w, *next, *fifo = take_parked();
		if (!fifo)
			return;
		bool again = false;
		for (w = fifo; w; w = next) {
			next = work_next(w);
			again |= !enqueue(w);
		}
		/* parked again, but that fork is already over: ours to do */
		if (!again || wref__forking())
			return;
	}
}

/* counts @w queued; true if it goes to the executor, false if it was
 * queued inline on this thread (inline mode, or no thread could be
 * started: it runs at the outermost return from library code) */
static bool to_executor(struct wref__work *w)
{
	bool c = counted(w);
	if (c)
		wref__stat_add(WREF_ST_QUEUED, 1);
	/* acquire: pairs with the release in start_locked() */
	if (!wref__exec_inline() &&
	    (atomic_load_explicit(&ex_running, memory_order_acquire) ||
	     start_executor())) {
		/* TSan: pairs with the acquire in ex_main() */
		wref__tsan_release(w);
		return true;
	}
	if (c)
		/* seq_cst: exec_busy reads it between its fences */
		atomic_fetch_add(&inl_pending, 1);
	inline_push(w);
	return false;
}

bool wref__exec_queue(struct wref__work *w)
{
	if (!to_executor(w))
		return true; /* the caller runs it: wref__defer (object.c) */
	/* parked: if the fork ended before our push, its handler missed it */
	if (!enqueue(w) && !wref__forking())
		unpark();
	return false;
}

bool wref__exec_queue_chain(struct wref__work *w)
{
	if (w && !work_next(w)) /* one item: no private queue */
		return wref__exec_queue(w);
	struct __cds_wfcq_head h;
	struct cds_wfcq_tail t;
	bool any = false, inl = false;
	__cds_wfcq_init(&h, &t);
	for (struct wref__work *next; w; w = next) {
		next = work_next(w);
		if (to_executor(w)) {
			cds_wfcq_node_init(&w->node);
			cds_wfcq_enqueue(&h, &t, &w->node); /* private */
			any = true;
		} else {
			inl = true;
		}
	}
	if (any && !enqueue_all(&h, &t) && !wref__forking())
		unpark();
	return inl;
}

/* A flush barrier lives on the heap, not on its waiter's stack: after a
 * fork() the child finds it in the queue, and glibc gives the stacks of
 * the parent's other threads to the first threads the child creates. */
struct barrier {
	struct wref__work w;
	_Atomic uint32_t done;
	bool heap; /* false: out of memory, on the waiter's stack */
};

static void barrier_run(struct wref__work *w)
{
	struct barrier *b = caa_container_of(w, struct barrier, w);
	/* what the work before us retired is handed to call_rcu now, so a
	 * flush followed by an RCU barrier sees it freed */
	wref__rcu_flush_local();
	/* release: pairs with the acquire in wref_flush() */
	atomic_store_explicit(&b->done, 1, memory_order_release);
	wref__futex_wake(&b->done, 1);
}

bool wref__exec_cannot_wait(void)
{
	return tls_in_cb || tls_inl_head;
}

int wref_flush(void)
{
	/* in a callback, or with inline items queued on this thread, which
	 * run only once the caller returned to the outermost library call
	 * (a destroy's own death callbacks, issue 16 item 12) */
	if (wref__exec_cannot_wait())
		return -EDEADLK;
	wref__rcu_flush_local();
	if (wref__exec_inline())
		return 0; /* inline items ran before the call that queued them
			     returned (none is queued on this thread) */
	/* acquire: pairs with the release in start_executor().  Not running
	 * and nothing pending: nothing to wait for.  Pending is exec_busy(),
	 * not just the queue: an executor another thread is starting may
	 * have taken our items into its batch before ex_running is stored
	 * (it was: a callback queued before the flush ran after it) */
	if (!atomic_load_explicit(&ex_running, memory_order_acquire) &&
	    !exec_busy())
		return 0;
	struct barrier stack_b = { .w.run = barrier_run };
	struct barrier *b = malloc(sizeof *b);
	if (b)
		*b = (struct barrier){ .w.run = barrier_run, .heap = true };
	else
		b = &stack_b; /* out of memory */
	atomic_init(&b->done, 0);
	/* no executor could be started: the barrier was queued inline, and
	 * is all this thread has queued (wref__exec_cannot_wait above) */
	if (wref__exec_queue(&b->w))
		wref__inline_drain();
	/* acquire: pairs with the release in barrier_run() */
	while (!atomic_load_explicit(&b->done, memory_order_acquire))
		wref__futex_wait(&b->done, 0);
	if (b->heap)
		free(b);
	return 0;
}

/* The join happens outside ex_mutex: a callback still running on the
 * executor may fork(), and fork_prepare takes ex_mutex. */
void wref__executor_stop(void)
{
	pthread_mutex_lock(&ex_mutex);
	while (ex_stopping) /* another thread is stopping it: wait for that */
		pthread_cond_wait(&ex_stopped, &ex_mutex);
	/* relaxed: under ex_mutex */
	if (atomic_load_explicit(&ex_running, memory_order_relaxed) &&
	    !pthread_equal(pthread_self(), ex_thread)) {
		pthread_t th = ex_thread;
		ex_stopping = true;
		/* release: pairs with the acquire in ex_main() */
		atomic_store_explicit(&ex_stop, true, memory_order_release);
		kick_executor();
		pthread_mutex_unlock(&ex_mutex);
		pthread_join(th, NULL);
		pthread_mutex_lock(&ex_mutex);
		/* relaxed: under ex_mutex */
		atomic_store_explicit(&ex_stop, false, memory_order_relaxed);
		/* seq_cst + fence: Dekker with queued() (see there) */
		atomic_store(&ex_running, false);
		atomic_thread_fence(memory_order_seq_cst);
		ex_stopping = false;
		pthread_cond_broadcast(&ex_stopped);
		/* queued by other threads after the executor's last look (a
		 * wref_flush racing wref_shutdown): a new executor runs it */
		if (!cds_wfcq_empty(&q_head, &q_tail))
			start_locked();
	}
	ex_unlock();
}

/*
 * Callbacks or deferred work queued and not yet finished, in either mode
 * and on any thread: on the queue, parked during a fork, taken by the
 * executor (its count), or inline on some thread.  A snapshot: work queued
 * concurrently may be missed, as with any call made while other threads
 * queue work.
 */
static bool exec_busy(void)
{
	/* seq_cst: ordered with the fences below and the producers' RMWs */
	if (atomic_load(&inl_pending) || atomic_load(&parked))
		return true;
	/* seq_cst fences around the queue's plain loads: after whatever the
	 * caller saw happen; and an emptiness read from the splice that took
	 * a batch (its exchanges are full barriers) makes the claim stored
	 * before them visible below */
	atomic_thread_fence(memory_order_seq_cst);
	if (!cds_wfcq_empty(&q_head, &q_tail))
		return true;
	atomic_thread_fence(memory_order_seq_cst);
	/* acquire: pairs with the release ending the claim in take_batch();
	 * a claim lasts a splice and a walk, never user code */
	while (atomic_load_explicit(&ex_batch.claim, memory_order_acquire))
		sched_yield();
	/* acquire: pairs with the release stores of the count in ex_main() */
	return atomic_load_explicit(&ex_batch.unrun, memory_order_acquire) != 0;
}

int wref__exec_set_mode(int mode)
{
	if (mode != WREF_EXEC_THREAD && mode != WREF_EXEC_INLINE)
		return -EINVAL;
	/* relaxed: configuration, before use */
	if (atomic_load_explicit(&exec_mode, memory_order_relaxed) == mode)
		return 0;
	/* what the executor took into its batch or runs, and other threads'
	 * inline items, count too (issue 16 item 11) */
	if (exec_busy())
		return -EBUSY;
	atomic_store_explicit(&exec_mode, mode, memory_order_relaxed);
	return 0;
}

/*
 * After fork() only the forking thread exists.  The parent's executor
 * thread is gone; what it had taken but not yet run, and everything
 * still queued, belongs to the child now and runs on a new executor
 * started lazily (rule 18).  fork_prepare waited until no thread was
 * inside a queue operation (wref__fork_guard_enter), so the queue is
 * whole, and the executor's batch is a plain chain, whole at any point.
 * If a callback on the executor forked, this thread is that executor,
 * in the child too: it goes on with its batch once the callback returns.
 * This runs before the child creates any thread (fork.c): a flush
 * barrier on a waiter's stack (out of memory) is still intact.
 */
void wref__executor_atfork_prepare(void)
{
	pthread_mutex_lock(&ex_mutex); /* no start/stop across the fork */
}

void wref__executor_atfork_parent(void)
{
	/* first: unpark may start it; a start requested during the fork
	 * (a dying thread found ex_mutex taken) is served here */
	ex_unlock();
	unpark();
}

/* a flush barrier in the child: its waiter was another thread, which does
 * not exist here; true if @w was one (dropped) */
static bool drop_barrier(struct wref__work *w)
{
	if (w->run != barrier_run)
		return false;
	struct barrier *b = caa_container_of(w, struct barrier, w);
	if (b->heap)
		free(b); /* its waiter is gone */
	return true;
}

void wref__executor_atfork_child(void)
{
	struct __cds_wfcq_head h;
	struct cds_wfcq_tail t;
	struct wref__work *w, *next;

	pthread_mutex_unlock(&ex_mutex); /* taken in the prepare handler */
	/* a stop in progress was another thread's: none here; its waiters
	 * are gone too, so the condition variable starts afresh */
	ex_stopping = false;
	pthread_cond_init(&ex_stopped, NULL);
	/* relaxed: the child has one thread */
	bool self = atomic_load_explicit(&ex_running, memory_order_relaxed) &&
		    pthread_equal(pthread_self(), ex_thread);
	atomic_store_explicit(&ex_running, self, memory_order_relaxed);
	atomic_store_explicit(&ex_stop, false, memory_order_relaxed);
	atomic_store_explicit(&ex_sleeping, 0, memory_order_relaxed);
	atomic_store_explicit(&ex_batch.claim, 0, memory_order_relaxed);
	struct wref__work *batch = ex_batch.next;
	if (self) {
		/* the batch stays this executor's, less its barriers (not
		 * counted: the count stays, the running item included) */
		struct wref__work **pp = &ex_batch.next;
		for (w = batch; w; w = next) {
			next = work_next(w);
			if (drop_barrier(w))
				continue;
			*pp = w;
			pp = (struct wref__work **)&w->node.next;
		}
		*pp = NULL;
		batch = NULL;
	} else {
		ex_batch.next = NULL;
		atomic_store_explicit(&ex_batch.unrun, 0,
				      memory_order_relaxed);
	}
	__cds_wfcq_init(&h, &t);
	bool lost = __cds_wfcq_splice_nonblocking(&h, &t, &q_head, &q_tail) ==
		    CDS_WFCQ_RET_WOULDBLOCK;
	__cds_wfcq_init(&q_head, &q_tail);
	/* what other threads parked during the fork came after the queue */
	struct wref__work *fifo = take_parked();
	/* pending inline here: this thread's own inline items and the ones it
	 * is running (the other threads' are gone) */
	unsigned long pending = tls_inl_running;
	for (w = tls_inl_head; w; w = work_next(w))
		pending += counted(w);
	/* seq_cst: the child's only thread; as every inl_pending access */
	atomic_store(&inl_pending, pending);
	/* requeue, in order: the parent executor's batch (queued first), the
	 * queue, what was parked; dropping flush barriers */
	for (bool torn = false;;) {
		struct cds_wfcq_node *n;
		if ((w = batch) != NULL) {
			batch = work_next(w);
		} else if (!torn && (n = __cds_wfcq_dequeue_nonblocking(&h,
						&t)) != NULL) {
			if (n == CDS_WFCQ_WOULDBLOCK) {
				/* a queue cut in half: cannot happen (fork
				 * guard) */
				lost = torn = true;
				continue;
			}
			w = caa_container_of(n, struct wref__work, node);
		} else if ((w = fifo) != NULL) {
			fifo = work_next(w);
		} else {
			break;
		}
		if (drop_barrier(w))
			continue;
		cds_wfcq_node_init(&w->node); /* next names its old successor */
		cds_wfcq_enqueue(&q_head, &q_tail, &w->node);
	}
	if (lost)
		fprintf(stderr, "libwref: warning: fork() interrupted a queue "
			"operation; some parent callbacks are lost in the "
			"child\n");
}
