/*
 * runtime.c - library set-up: configuration, shutdown and exit drain,
 * fork handlers, and the per-thread statistics registry.
 */
#include "internal.h"

#include <sched.h>
#include <stdlib.h>

/* ---- statistics ------------------------------------------------------------ */

__thread struct wref__tstats wref__tls_stats
	__attribute__((tls_model("initial-exec")));
struct wref__tstats wref__late;
static pthread_mutex_t st_lock = PTHREAD_MUTEX_INITIALIZER;
/* under st_lock; wref__late is always on it, last */
static struct wref__tstats *st_list = &wref__late;
static uint64_t st_gone[WREF_ST_N];     /* exited threads, under st_lock */
static pthread_key_t st_key;

static void fold(struct wref__tstats *s)
{
	for (int i = 0; i < WREF_ST_N; i++) {
		/* relaxed: under st_lock; the owner has stopped writing */
		st_gone[i] += atomic_load_explicit(&s->v[i],
						   memory_order_relaxed);
		atomic_store_explicit(&s->v[i], 0, memory_order_relaxed);
	}
}

static void unlink_stats(struct wref__tstats *s)
{
	for (struct wref__tstats **p = &st_list; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
}

static void stats_thread_exit(void *p)
{
	struct wref__tstats *s = p;
	wref__rcu_flush_exiting(s);
	pthread_mutex_lock(&st_lock);
	unlink_stats(s);
	fold(s);
	pthread_mutex_unlock(&st_lock);
	/* a later key destructor of this thread may call the library: it
	 * must not link this block again, which would stay on the registry
	 * after the thread is gone (issue 16); it counts in wref__late */
	s->exited = true;
	s->registered = false;
}

void wref__stat_add_late(int i, uint64_t n)
{
	/* relaxed: a counter read as a snapshot (wref_stats); several
	 * exiting threads may add at once, hence the RMW */
	atomic_fetch_add_explicit(&wref__late.v[i], n, memory_order_relaxed);
}

bool wref__stats_register(void)
{
	struct wref__tstats *s = &wref__tls_stats;
	if (s->exited)
		return false;
	pthread_mutex_lock(&st_lock);
	s->next = st_list;
	st_list = s;
	pthread_mutex_unlock(&st_lock);
	s->registered = true;
	pthread_setspecific(st_key, s);
	return true;
}

void wref_stats(struct wref_stats *out)
{
	uint64_t v[WREF_ST_N];
	if (!out)
		return;
	pthread_mutex_lock(&st_lock);
	for (int i = 0; i < WREF_ST_N; i++)
		v[i] = st_gone[i];
	for (struct wref__tstats *s = st_list; s; s = s->next)
		for (int i = 0; i < WREF_ST_N; i++)
			/* relaxed: a snapshot of a counter only its thread
			 * writes */
			v[i] += atomic_load_explicit(&s->v[i],
						     memory_order_relaxed);
	pthread_mutex_unlock(&st_lock);
	out->objects_created = v[WREF_ST_CREATED];
	out->objects_live = v[WREF_ST_CREATED] - v[WREF_ST_DIED];
	out->blocks_live = v[WREF_ST_CB_ALLOC] - v[WREF_ST_CB_FREE];
	out->callbacks_queued = v[WREF_ST_QUEUED];
	out->callbacks_run = v[WREF_ST_RUN];
}

struct rcu_head *wref__stats_atfork_child(void)
{
	/* the other threads are gone: fold their counters */
	struct wref__tstats *self = &wref__tls_stats;
	struct rcu_head *orphans = NULL;
	/* held since fork_prepare; the other threads' blocks are folded under
	 * it, then it is released as in the parent */
	for (struct wref__tstats *s = st_list, *n; s; s = n) {
		n = s->next;
		if (s != self) {
			fold(s);
			/* the child owns a copy of what they retired: adopted
			 * once st_lock is free (handing over may need it) */
			orphans = wref__rcu_chain(wref__rcu_steal(s), orphans);
		}
	}
	/* relaxed: the child has one thread, not inside a guard (the others'
	 * counts in wref__late are gone with them) */
	atomic_store_explicit(&wref__late.in_submit, 0, memory_order_relaxed);
	wref__late.next = NULL;
	st_list = &wref__late;
	if (self->registered) {
		self->next = st_list;
		st_list = self;
	}
	pthread_mutex_unlock(&st_lock);
	return orphans;
}

/* every thread's retired memory, handed to call_rcu by this thread, or
 * by its owner if that one is handing it over right now */
static void retire_all(void)
{
	struct rcu_head *all = NULL;
	struct wref__tstats *self = &wref__tls_stats;
	pthread_mutex_lock(&st_lock);
	for (struct wref__tstats *s = st_list; s; s = s->next)
		all = wref__rcu_chain(wref__rcu_steal(s), all);
	/* an owner that took its list before us takes it inside its fork
	 * guard: once in_submit reads 0, that list is in call_rcu's queue
	 * (seq_cst load; its in_submit store happens-before it through the
	 * acq_rel exchanges on its list in wref__rcu_steal) */
	for (struct wref__tstats *s = st_list; s; s = s->next)
		while (s != self && atomic_load(&s->in_submit))
			sched_yield();
	pthread_mutex_unlock(&st_lock);
	/* outside st_lock: handing over may register this thread */
	wref__rcu_adopt(all);
	/* waiting for a fork in progress: its handlers would leave the list
	 * here, after the barrier that should wait for it (issue 16) */
	wref__rcu_flush_wait();
}

/* ---- shutdown hooks ------------------------------------------------------------ */

#define MAX_HOOKS 8
static void (*_Atomic hooks[MAX_HOOKS])(void);

void wref__on_shutdown(void (*fn)(void))
{
	for (int i = 0; i < MAX_HOOKS; i++) {
		void (*cur)(void) = NULL;
		if (atomic_compare_exchange_strong(&hooks[i], &cur, fn) ||
		    cur == fn)
			return;
	}
	abort(); /* more layers than slots: a build error, not a runtime one */
}

int wref_init(const wref_config *cfg)
{
	return wref__exec_set_mode(cfg ? cfg->exec_mode : WREF_EXEC_THREAD);
}

static void run_hooks(void)
{
	for (int i = 0; i < MAX_HOOKS; i++) {
		void (*fn)(void) = atomic_load(&hooks[i]);
		if (fn)
			fn();
	}
}

void wref_shutdown(void)
{
	/* cannot stop the executor from inside it, nor drain work that runs
	 * only once the caller returned (an inline destroy's callbacks) */
	if (wref__exec_cannot_wait())
		return;
	wref_flush();
	run_hooks();
	wref_flush();
	wref__executor_stop();
	/* deferred frees of dead objects' memory, retired by any thread, and
	 * what the callbacks run by the barrier retire in turn */
	for (int round = 0; round < 2; round++) {
		retire_all();
		urcu_bp_barrier();
	}
}

/* The automatic shutdown at exit.  exit() called from a callback or a
 * destroy that the library runs (on the executor, or inline) cannot drain
 * nor stop the executor (it may be the executor), but the armed at-exit
 * finalizers still run, on this thread (issue 16 item 14). */
static void exit_shutdown(void)
{
	if (wref__exec_cannot_wait())
		run_hooks();
	else
		wref_shutdown();
}

/* ---- fork ---------------------------------------------------------------- */

/*
 * fork_prepare must leave no thread halfway through an operation on a
 * liburcu queue (call_rcu's, the executor's): a vanished thread's
 * half-done enqueue would hang the child.  It sets the fork flag and waits
 * until no thread is inside one (wref__fork_guard_try), before the liburcu
 * steps, which wait for grace periods: a thread that sees the flag while
 * inside a read-side section parks its work and goes on instead of waiting.
 * The liburcu locks are taken last, by liburcu, and st_lock after them, so
 * that the statistics registry is still free while grace periods run.
 */
static void fork_prepare(void)
{
	/* call_rcu creates liburcu's default call_rcu data on first use,
	 * under the mutex call_rcu_before_fork holds: create it now */
	(void)urcu_bp_get_default_call_rcu_data();
	wref__executor_atfork_prepare();
	wref__rcu_fork_block(true);
	pthread_mutex_lock(&st_lock);
	for (struct wref__tstats *s = st_list; s; s = s->next)
		/* seq_cst: Dekker with wref__fork_guard_try() */
		while (atomic_load(&s->in_submit))
			sched_yield();
	pthread_mutex_unlock(&st_lock);
	urcu_bp_call_rcu_before_fork();
	urcu_bp_before_fork();
	pthread_mutex_lock(&st_lock); /* the registry is copied whole */
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&st_lock);
	urcu_bp_after_fork_parent();
	urcu_bp_call_rcu_after_fork_parent();
	wref__rcu_fork_block(false);
	wref__executor_atfork_parent(); /* queues what was parked */
}

/* Our own state first: it reads memory of the parent's other threads
 * (their TLS statistics blocks, queued flush barriers), and the liburcu
 * calls below create threads, which glibc may give those threads' stacks
 * and TLS.  What the dead threads retired is handed to call_rcu last,
 * once liburcu works again. */
static void fork_child(void)
{
	struct rcu_head *orphans = wref__stats_atfork_child();
	wref__executor_atfork_child();
	urcu_bp_after_fork_child();
	urcu_bp_call_rcu_after_fork_child();
	wref__rcu_fork_block(false);
	wref__rcu_adopt(orphans);
}

__attribute__((constructor)) static void runtime_init(void)
{
	pthread_key_create(&st_key, stats_thread_exit);
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	atexit(exit_shutdown);
}
