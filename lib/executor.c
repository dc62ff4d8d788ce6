/*
 * executor.c - the deferred executor: one thread draining a wait-free MPSC
 * queue (liburcu wfcqueue).  Death callbacks, finalizers and the library's
 * own deferred work (value releases, evictions) run here, never under a
 * library lock and never on the releasing thread.  wref_flush() is a
 * barrier through the same queue.  Inline mode runs items on the thread
 * that queued them, at the outermost return from library code.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

static struct __cds_wfcq_head q_head;
static struct cds_wfcq_tail q_tail;
/* the executor's current batch (executor thread only; read after fork) */
static struct __cds_wfcq_head batch_head;
static struct cds_wfcq_tail batch_tail;

static pthread_mutex_t ex_mutex = PTHREAD_MUTEX_INITIALIZER; /* start/stop */
static pthread_cond_t ex_stopped = PTHREAD_COND_INITIALIZER;
static bool ex_stopping; /* under ex_mutex: a stop is joining the thread */
static pthread_t ex_thread;
static _Atomic bool ex_running;
static _Atomic bool ex_stop;
static _Atomic uint32_t ex_seq;      /* futex word: bumped on wake-ups */
static _Atomic uint32_t ex_sleeping; /* the executor is (about to be) asleep */
static _Atomic int exec_mode = WREF_EXEC_THREAD;

/* callbacks and deferred work queued and not yet run (flush barriers are
 * not counted), in either mode and on any thread: wref_init's -EBUSY */
static _Atomic unsigned long ex_pending;

static __thread bool tls_in_cb __attribute__((tls_model("initial-exec")));
/* counted items this thread is running (nested inline runs); fork child */
static __thread unsigned tls_running __attribute__((tls_model("initial-exec")));
/* inline mode: this thread's queued items, FIFO */
__thread struct wref__work *wref__tls_inl_head
	__attribute__((tls_model("initial-exec")));
#define tls_inl_head wref__tls_inl_head
static __thread struct wref__work **tls_inl_tail
	__attribute__((tls_model("initial-exec")));

__attribute__((constructor)) static void executor_init(void)
{
	__cds_wfcq_init(&q_head, &q_tail);
	__cds_wfcq_init(&batch_head, &batch_tail);
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

static void run_item(struct wref__work *w)
{
	bool was = tls_in_cb;
	bool counted = w->run != barrier_run; /* flush barriers are not work */
	tls_in_cb = true;
	tls_running += counted;
	w->run(w);
	tls_running -= counted;
	tls_in_cb = was;
	if (counted) {
		wref__stat_add(WREF_ST_RUN, 1);
		atomic_fetch_sub(&ex_pending, 1);
	}
}

/* the next item of the current batch, or NULL when it is used up */
static struct wref__work *batch_next(void)
{
	struct wref__thread *g = wref__fork_guard_enter();
	struct cds_wfcq_node *n =
		__cds_wfcq_dequeue_blocking(&batch_head, &batch_tail);
	wref__fork_guard_leave(g);
	return n ? caa_container_of(n, struct wref__work, node) : NULL;
}

static void *ex_main(void *unused)
{
	(void)unused;
	tls_in_cb = true; /* wref_flush() from here would wait on itself */
	for (;;) {
		struct wref__thread *g = wref__fork_guard_enter();
		enum cds_wfcq_ret r = __cds_wfcq_splice_blocking(&batch_head,
				&batch_tail, &q_head, &q_tail);
		wref__fork_guard_leave(g);
		if (r == CDS_WFCQ_RET_SRC_EMPTY) {
			/* acquire: pairs with the release store in
			 * wref__executor_stop() */
			if (atomic_load_explicit(&ex_stop,
						 memory_order_acquire))
				break;
			wref__rcu_flush_local(); /* before a long sleep */
			uint32_t seq = atomic_load(&ex_seq);
			/* seq_cst: the store to ex_sleeping and the emptiness
			 * check must not reorder (Dekker with wake_executor) */
			atomic_store(&ex_sleeping, 1);
			if (cds_wfcq_empty(&q_head, &q_tail) &&
			    !atomic_load(&ex_stop))
				wref__futex_wait(&ex_seq, seq);
			atomic_store(&ex_sleeping, 0);
			continue;
		}
		struct wref__work *w;
		while ((w = batch_next()) != NULL) {
			/* TSan: pairs with the release in wref__defer() */
			wref__tsan_acquire(w);
			run_item(w); /* outside the fork guard: user code */
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
		/* release: pairs with the acquire in wref__defer() */
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

static void wake_executor(void)
{
	atomic_fetch_add(&ex_seq, 1);
	if (atomic_load(&ex_sleeping))
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
		tls_inl_head = (struct wref__work *)w->node.next;
		run_item(w);
	}
}

/* Work queued while a fork is in progress: a thread that finds the fork
 * flag set must not touch the queue (fork_prepare may be waiting for it to
 * leave a read-side section), so it pushes the item here with one CAS, which
 * a fork cannot cut in half.  Linked through node.next; LIFO. */
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

/* false if @w was parked instead */
static bool enqueue(struct wref__work *w)
{
	cds_wfcq_node_init(&w->node);
	struct wref__thread *g = wref__fork_guard_try();
	if (!g) {
		park(w);
		return false;
	}
	bool was_empty = !cds_wfcq_enqueue(&q_head, &q_tail, &w->node);
	wref__fork_guard_leave(g);
	if (was_empty)
		wake_executor(); /* it may sleep */
	/* seq_cst, Dekker with wref__executor_stop(): the enqueue's xchg is a
	 * full barrier; either the stopper sees our item after clearing
	 * ex_running and starts a new executor, or we see it cleared here */
	if (!atomic_load(&ex_running))
		start_executor();
	return true;
}

/* take everything parked, oldest first */
static struct wref__work *take_parked(void)
{
	struct wref__work *w = atomic_exchange(&parked, NULL), *fifo = NULL,
			  *next;
	for (; w; w = next) { /* LIFO to FIFO */
		next = (struct wref__work *)w->node.next;
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
			next = (struct wref__work *)w->node.next;
			again |= !enqueue(w);
		}
		/* parked again, but that fork is already over: ours to do */
		if (!again || wref__forking())
			return;
	}
}

void wref__defer(struct wref__work *w)
{
	if (w->run != barrier_run) {
		wref__stat_add(WREF_ST_QUEUED, 1);
		atomic_fetch_add(&ex_pending, 1);
	}
	/* acquire: pairs with the release in start_executor() */
	if (wref__exec_inline() ||
	    (!atomic_load_explicit(&ex_running, memory_order_acquire) &&
	     !start_executor())) {
		/* inline mode, or no thread could be started: run it here at
		 * the outermost return from library code */
		inline_push(w);
		wref__enter();
		wref__leave();
		return;
	}
	/* TSan: pairs with the acquire in ex_main() */
	wref__tsan_release(w);
	/* parked: if the fork ended before our push, its handler missed it */
	if (!enqueue(w) && !wref__forking())
		unpark();
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
	/* acquire: pairs with the release in start_executor() */
	if (!atomic_load_explicit(&ex_running, memory_order_acquire) &&
	    cds_wfcq_empty(&q_head, &q_tail))
		return 0;
	struct barrier stack_b = { .w.run = barrier_run };
	struct barrier *b = malloc(sizeof *b);
	if (b)
		*b = (struct barrier){ .w.run = barrier_run, .heap = true };
	else
		b = &stack_b; /* out of memory */
	atomic_init(&b->done, 0);
	wref__defer(&b->w);
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
		wake_executor();
		pthread_mutex_unlock(&ex_mutex);
		pthread_join(th, NULL);
		pthread_mutex_lock(&ex_mutex);
		/* relaxed: under ex_mutex */
		atomic_store_explicit(&ex_stop, false, memory_order_relaxed);
		/* seq_cst + fence: Dekker with enqueue() (see there) */
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

int wref__exec_set_mode(int mode)
{
	if (mode != WREF_EXEC_THREAD && mode != WREF_EXEC_INLINE)
		return -EINVAL;
	/* relaxed: configuration, before use */
	if (atomic_load_explicit(&exec_mode, memory_order_relaxed) == mode)
		return 0;
	/* what the executor took into its batch or runs, and other threads'
	 * inline items, count too (issue 16 item 11) */
	if (atomic_load(&ex_pending) != 0)
		return -EBUSY;
	atomic_store_explicit(&exec_mode, mode, memory_order_relaxed);
	return 0;
}

/*
 * After fork() only the forking thread exists.  The parent's executor
 * thread is gone; what it had dequeued but not yet run, and everything
 * still queued, belongs to the child now and runs on a new executor
 * started lazily (rule 18).  fork_prepare waited until no thread was
 * inside a queue operation (wref__fork_guard_enter), so both queues are
 * whole.  This runs before the child creates any thread (fork.c):
 * a flush barrier on a waiter's stack (out of memory) is still intact.
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

void wref__executor_atfork_child(void)
{
	struct __cds_wfcq_head h;
	struct cds_wfcq_tail t;

	pthread_mutex_unlock(&ex_mutex); /* taken in the prepare handler */
	/* a stop in progress was another thread's: none here; its waiters
	 * are gone too, so the condition variable starts afresh */
	ex_stopping = false;
	pthread_cond_init(&ex_stopped, NULL);
	atomic_store_explicit(&ex_running, false, memory_order_relaxed);
	atomic_store_explicit(&ex_stop, false, memory_order_relaxed);
	atomic_store_explicit(&ex_sleeping, 0, memory_order_relaxed);
	__cds_wfcq_init(&h, &t);
	/* both, unconditionally: the batch first (it was queued earlier) */
	bool lost = __cds_wfcq_splice_nonblocking(&h, &t, &batch_head,
			&batch_tail) == CDS_WFCQ_RET_WOULDBLOCK;
	lost |= __cds_wfcq_splice_nonblocking(&h, &t, &q_head, &q_tail) ==
		CDS_WFCQ_RET_WOULDBLOCK;
	__cds_wfcq_init(&q_head, &q_tail);
	__cds_wfcq_init(&batch_head, &batch_tail);
	/* what other threads parked during the fork came after the queue */
	struct wref__work *w, *fifo = take_parked();
	/* what is pending here: the requeued items, and this thread's own
	 * inline items and the ones it is running (the other threads' and
	 * the item the parent's executor was running are gone) */
	unsigned long pending = tls_running;
	for (w = tls_inl_head; w; w = (struct wref__work *)w->node.next)
		pending++;
	/* requeue, dropping flush barriers: their waiters were other threads,
	 * which do not exist here */
	for (bool torn = false;;) {
		struct cds_wfcq_node *n =
			torn ? NULL : __cds_wfcq_dequeue_nonblocking(&h, &t);
		if (n == CDS_WFCQ_WOULDBLOCK) {
			/* a queue cut in half: cannot happen (fork guard) */
			lost = torn = true;
			n = NULL;
		}
		if (n) {
			w = caa_container_of(n, struct wref__work, node);
		} else if ((w = fifo) != NULL) {
			fifo = (struct wref__work *)w->node.next;
		} else {
			break;
		}
		if (w->run == barrier_run) {
			struct barrier *b = caa_container_of(w, struct barrier,
							     w);
			if (b->heap)
				free(b); /* its waiter is gone */
			continue;
		}
		cds_wfcq_node_init(&w->node); /* next names its old successor */
		cds_wfcq_enqueue(&q_head, &q_tail, &w->node);
		pending++;
	}
	atomic_store(&ex_pending, pending);
	if (lost)
		fprintf(stderr, "libwref: warning: fork() interrupted a queue "
			"operation; some parent callbacks are lost in the "
			"child\n");
}
