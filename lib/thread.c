/*
 * thread.c - per-thread state (struct wref__thread): each thread's
 * statistics counters, the memory it retired and has not handed to
 * call_rcu yet (owned by rcu.c), and its fork-guard flag; the registry of
 * those blocks, which wref_stats(), wref_shutdown() and the fork handlers
 * walk; the fork guard itself; and wref__thread_start, which starts the
 * library's own threads (the executor, the tiers' timer) with every signal
 * blocked.
 *
 * A thread registers on its first use of the library (rule 10: threads
 * never register explicitly) and leaves the registry at its exit, from a
 * pthread key destructor, after the exit step rcu.c registered has handed
 * its retired memory to call_rcu.  A key destructor of another library
 * that runs later and calls libwref finds the block marked exited and
 * counts in wref__late instead (issue 16).
 *
 * Imports: nothing above it (alloc/lock level).  rcu.c's part of the exit
 * is a registered step (wref__thread_set_exit_step), not a call, so that
 * rcu.c -> thread.c is the only edge between the two.
 */
#include "thread.h"

#include <linux/membarrier.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread struct wref__thread wref__tls_thread
	__attribute__((tls_model("initial-exec")));

/* The registry: every registered thread's block, and wref__late always
 * on it, last (threads are added at the head).  Under reg_lock; the fork
 * handlers hold reg_lock across fork() (fork.c), so the child gets the
 * registry whole. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cds_list_head registry = { &wref__late.node, &wref__late.node };
struct wref__thread wref__late = { .node = { &registry, &registry } };
static uint64_t gone[WREF_ST_N]; /* exited threads' counters, under reg_lock */
static pthread_key_t exit_key;
/* set once by rcu.c's constructor, before any thread can exit registered */
static void (*exit_step)(struct wref__thread *t);

#define for_each_thread(t) cds_list_for_each_entry(t, &registry, node)

void wref__thread_set_exit_step(void (*fn)(struct wref__thread *t))
{
	exit_step = fn;
}

/* ---- statistics ------------------------------------------------------ */

static void fold(struct wref__thread *t)
{
	for (int i = 0; i < WREF_ST_N; i++) {
		/* relaxed: under reg_lock; the owner has stopped writing */
		gone[i] += atomic_load_explicit(&t->stats[i],
						memory_order_relaxed);
		atomic_store_explicit(&t->stats[i], 0, memory_order_relaxed);
	}
}

void wref__stat_add_late(int i, uint64_t n)
{
	/* relaxed: a counter read as a snapshot (wref_stats); several
	 * exiting threads may add at once, hence the RMW */
	atomic_fetch_add_explicit(&wref__late.stats[i], n,
				  memory_order_relaxed);
}

void wref_stats(struct wref_stats *out)
{
	uint64_t v[WREF_ST_N];
	if (!out)
		return;
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < WREF_ST_N; i++)
		v[i] = gone[i];
	struct wref__thread *t;
	for_each_thread(t)
		for (int i = 0; i < WREF_ST_N; i++)
			/* relaxed: a snapshot of a counter only its thread
			 * writes (wref__late's: by RMW) */
			v[i] += atomic_load_explicit(&t->stats[i],
						     memory_order_relaxed);
	pthread_mutex_unlock(&reg_lock);
	out->objects_created = v[WREF_ST_CREATED];
	out->objects_live = v[WREF_ST_CREATED] - v[WREF_ST_DIED];
	out->blocks_live = v[WREF_ST_CB_ALLOC] - v[WREF_ST_CB_FREE];
	out->callbacks_queued = v[WREF_ST_QUEUED];
	out->callbacks_run = v[WREF_ST_RUN];
}

/* ---- registration and exit ------------------------------------------- */

static void thread_exit(void *p)
{
	struct wref__thread *t = p;
	if (exit_step)
		exit_step(t); /* rcu.c: hand over the retired memory */
	pthread_mutex_lock(&reg_lock);
	cds_list_del(&t->node);
	fold(t);
	pthread_mutex_unlock(&reg_lock);
	/* relaxed: our own field; off the registry, nobody else reads it.
	 * The exit step marked the home gone: batches still in flight free
	 * themselves, and the last drops the home */
	struct wref__home *h = atomic_load_explicit(&t->home,
						    memory_order_relaxed);
	if (h) {
		atomic_store_explicit(&t->home, NULL, memory_order_relaxed);
		wref__home_put(h);
	}
	/* a later key destructor of this thread may call the library: it
	 * must not link this block again, which would stay on the registry
	 * after the thread is gone (issue 16); it counts in wref__late */
	t->exited = true;
	t->registered = false;
}

bool wref__thread_register(void)
{
	struct wref__thread *t = &wref__tls_thread;
	if (t->exited)
		return false;
	pthread_mutex_lock(&reg_lock);
	cds_list_add(&t->node, &registry);
	pthread_mutex_unlock(&reg_lock);
	t->registered = true;
	pthread_setspecific(exit_key, t);
	return true;
}

/* ---- retired lists (their hand-over is rcu.c's) ----------------------- */

struct rcu_head *wref__thread_take_retired(struct wref__thread *t)
{
	/* acq_rel: the acquire pairs with the release CAS that pushed each
	 * head (rcu.c push_retired); the release with a later taker's
	 * exchange (wref__threads_take_retired), so it sees the in_submit
	 * we stored before taking the list */
	return atomic_exchange_explicit(&t->retired, NULL,
					memory_order_acq_rel);
}

struct rcu_head *wref__retired_chain(struct rcu_head *list,
				     struct rcu_head *more)
{
	struct rcu_head *h = list;
	if (!list)
		return more;
	while (wref__retired_next(h))
		h = wref__retired_next(h);
	h->next.next = (struct cds_wfcq_node *)more;
	return list;
}

struct rcu_head *wref__threads_take_retired(void)
{
	struct rcu_head *all = NULL;
	struct wref__thread *self = &wref__tls_thread;
	pthread_mutex_lock(&reg_lock);
	struct wref__thread *t;
	for_each_thread(t)
		all = wref__retired_chain(wref__thread_take_retired(t), all);
	/* an owner that took its list before us took it inside its fork
	 * guard: once in_submit reads 0, that list is in call_rcu's queue.
	 * Its in_submit = 1 happens-before this load through the acq_rel
	 * exchanges on its list (wref__thread_take_retired), so a 0 read
	 * here is its guard_leave's. */
	for_each_thread(t)
		/* acquire: pairs with the release in wref__fork_guard_leave
		 * (the owner's hand-over is complete) */
		while (t != self && atomic_load_explicit(&t->in_submit,
							 memory_order_acquire))
			sched_yield();
	pthread_mutex_unlock(&reg_lock);
	return all;
}

/* ---- fork guard -------------------------------------------------------- */

static _Atomic int forking;

/*
 * The guard's Dekker is asymmetric (issue 18): a guard is taken per
 * executor hand-off and per call_rcu batch, a fork is rare.  With
 * membarrier(2) registered, a thread's side is a relaxed store and load
 * with a compiler barrier between them, and the fork handler's side is
 * the flag's store, then MEMBARRIER_CMD_PRIVATE_EXPEDITED (a full barrier
 * on every running thread of the process: either a thread's load comes
 * after it and sees the flag, or its store came before it and the
 * handler sees in_submit), then the wait.  Registration is per process
 * and a fork child inherits it.  Without membarrier, and under TSan
 * (which does not know the system call), both sides are seq_cst.
 */
static bool guard_asym; /* set once, at load */

__attribute__((constructor)) static void guard_init(void)
{
#ifndef WREF_TSAN
	guard_asym = syscall(__NR_membarrier,
			     MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
}

void wref__fork_block(bool on)
{
	/* seq_cst: Dekker with wref__fork_guard_try (flag, then in_submit,
	 * against in_submit, then flag) and with the executor's park */
	atomic_store(&forking, on);
	/* registered, so it cannot fail (EINVAL/EPERM only without it):
	 * the asymmetric Dekker's heavy side, see guard_asym */
	if (on && guard_asym &&
	    syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0))
		abort(); /* a guard could be missed: the child's queue torn */
}

bool wref__forking(void)
{
	/* seq_cst: the reading side of the Dekker pairs above */
	return atomic_load(&forking);
}

/* an exiting thread past its exit step shares wref__late, whose in_submit
 * counts such threads (issue 16) */
static struct wref__thread *late_guard_try(void)
{
	struct wref__thread *me = &wref__late;
	/* seq_cst: as in wref__fork_guard_try */
	atomic_fetch_add(&me->in_submit, 1);
	/* seq_cst: the Dekker's second half */
	if (!atomic_load(&forking))
		return me;
	/* release: pairs with the load in wref__threads_wait_guards */
	atomic_fetch_sub_explicit(&me->in_submit, 1, memory_order_release);
	return NULL;
}

struct wref__thread *wref__fork_guard_try(void)
{
	struct wref__thread *me = &wref__tls_thread;
	/* the fork handler must see our flag: on the registry */
	if (wref_unlikely(!me->registered) && !wref__thread_register())
		return late_guard_try();
	if (wref_likely(guard_asym)) {
		/* relaxed, with a compiler barrier between them: the
		 * asymmetric Dekker with wref__fork_block's membarrier (see
		 * guard_asym) */
		atomic_store_explicit(&me->in_submit, 1, memory_order_relaxed);
		atomic_signal_fence(memory_order_seq_cst);
		if (!atomic_load_explicit(&forking, memory_order_relaxed))
			return me;
	} else {
		/* seq_cst, Dekker with the fork handler (wref__fork_block,
		 * then wref__threads_wait_guards): either it sees in_submit
		 * set and waits for us, or we see forking and stay out */
		atomic_store(&me->in_submit, 1);
		/* seq_cst: the Dekker's second half */
		if (!atomic_load(&forking))
			return me;
	}
	/* release: pairs with the load in wref__threads_wait_guards */
	atomic_store_explicit(&me->in_submit, 0, memory_order_release);
	return NULL;
}

struct wref__thread *wref__fork_guard_enter(void)
{
	struct wref__thread *me;
	while (!(me = wref__fork_guard_try()))
		sched_yield();
	return me;
}

void wref__fork_guard_leave(struct wref__thread *me)
{
	if (wref_unlikely(me == &wref__late))
		/* release: pairs with the load in wref__threads_wait_guards */
		atomic_fetch_sub_explicit(&me->in_submit, 1,
					  memory_order_release);
	else
		/* release: pairs with the load in wref__threads_wait_guards */
		atomic_store_explicit(&me->in_submit, 0,
				      memory_order_release);
}

/* ---- fork handlers' steps (called by fork.c, in its order) ------------- */

void wref__threads_wait_guards(void)
{
	pthread_mutex_lock(&reg_lock);
	struct wref__thread *t;
	for_each_thread(t)
		/* seq_cst: Dekker with wref__fork_guard_try() */
		while (atomic_load(&t->in_submit))
			sched_yield();
	pthread_mutex_unlock(&reg_lock);
}

void wref__threads_fork_lock(void)
{
	pthread_mutex_lock(&reg_lock); /* the registry is copied whole */
}

void wref__threads_fork_parent(void)
{
	pthread_mutex_unlock(&reg_lock);
}

/* the fork child: @t's thread is gone.  Its home is marked so (batches
 * coming back are freed where they land, rcu.c home_return), loses the
 * thread's ref, and what already came back is returned: each is a batch's
 * rcu_head, which re-retired runs run_batch again, on a gone home */
static struct rcu_head *lose_home(struct wref__thread *t)
{
	/* relaxed: the child has one thread */
	struct wref__home *h = atomic_load_explicit(&t->home,
						    memory_order_relaxed);
	if (!h)
		return NULL;
	atomic_store_explicit(&t->home, NULL, memory_order_relaxed);
	atomic_store(&h->gone, true);
	struct rcu_head *ready = wref__retired_chain(t->own_ready,
				atomic_exchange(&h->ready, NULL));
	t->own_ready = NULL;
	wref__home_put(h);
	return ready;
}

struct rcu_head *wref__threads_take_ready(void)
{
	struct rcu_head *all = NULL;
	pthread_mutex_lock(&reg_lock);
	struct wref__thread *t;
	for_each_thread(t) {
		/* acquire: pairs with the owner's release store (rcu.c
		 * home_get); the thread's ref keeps the home while it is
		 * on the registry */
		struct wref__home *h = atomic_load_explicit(&t->home,
							memory_order_acquire);
		if (h)
			/* acquire: pairs with the release push (rcu.c
			 * home_return): the batch's list is complete */
			all = wref__retired_chain(
				atomic_exchange_explicit(&h->ready, NULL,
							 memory_order_acquire),
				all);
	}
	pthread_mutex_unlock(&reg_lock);
	return all;
}

struct rcu_head *wref__threads_fork_child(void)
{
	/* the other threads are gone: fold their counters */
	struct wref__thread *self = &wref__tls_thread;
	struct rcu_head *orphans = NULL;
	/* reg_lock is held since the prepare handler; the other threads'
	 * blocks are folded under it, then it is released as in the parent */
	struct wref__thread *t;
	for_each_thread(t) {
		if (t != self) {
			fold(t);
			/* the child owns a copy of what they retired: adopted
			 * once reg_lock is free (handing over may need it) */
			orphans = wref__retired_chain(
				wref__thread_take_retired(t), orphans);
			orphans = wref__retired_chain(lose_home(t), orphans);
		}
	}
	/* relaxed: the child has one thread, not inside a guard (the others'
	 * counts in wref__late are gone with them) */
	atomic_store_explicit(&wref__late.in_submit, 0, memory_order_relaxed);
	CDS_INIT_LIST_HEAD(&registry);
	cds_list_add(&wref__late.node, &registry);
	if (self->registered)
		cds_list_add(&self->node, &registry);
	pthread_mutex_unlock(&reg_lock);
	return orphans;
}

__attribute__((constructor)) static void thread_init(void)
{
	pthread_key_create(&exit_key, thread_exit);
}

int wref__thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(th, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}
