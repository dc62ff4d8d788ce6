/*
 * check_executor.c - the executor and runtime: wref_flush (barrier,
 * -EDEADLK from a callback), wref_init (THREAD / INLINE, errors),
 * wref_shutdown and lazy restart, wref_stats, drain at exit (rule 13,
 * through the tests/test_exit helper), fork (rules 12, 18).
 */
#include "core_test.h"
#include "internal.h" /* wref__executor_stop */

#include <libgen.h>
#include <signal.h>
#include <sys/wait.h>

static char self_dir[4096];

static const wref_type obj_type = { .name = "obj" };

#define MAXCB 256
static _Atomic int cb_runs[MAXCB];
static pthread_t cb_thread[MAXCB];
static _Atomic int cb_flush_ret[MAXCB];

static void setup(void)
{
	for (int i = 0; i < MAXCB; i++) {
		atomic_store(&cb_runs[i], 0);
		atomic_store(&cb_flush_ret[i], 1);
	}
}

static void cb_count(wref_ref *r, void *arg)
{
	(void)r;
	int id = (int)(intptr_t)arg;
	cb_thread[id] = pthread_self();
	atomic_fetch_add(&cb_runs[id], 1);
}

static void cb_slow(wref_ref *r, void *arg)
{
	usleep(2000);
	cb_count(r, arg);
}

static void cb_flush(wref_ref *r, void *arg)
{
	int id = (int)(intptr_t)arg;
	atomic_store(&cb_flush_ret[id], wref_flush());
	wref_shutdown(); /* from a callback: a no-op, not a deadlock */
	cb_count(r, arg);
}

/* arm a callback on a fresh object and kill it; returns the ref */
static wref_ref *kill_with(wref_callback fn, int id)
{
	void *o = wref_new(&obj_type, 8);
	ck_assert_ptr_nonnull(o);
	wref_ref *r = wref_ref_new(o, fn, (void *)(intptr_t)id);
	ck_assert_ptr_nonnull(r);
	wref_release(o);
	return r;
}

START_TEST(test_flush_idle)
{
	/* nothing queued, executor never started */
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(wref_flush(), 0);
}
END_TEST

START_TEST(test_flush_waits)
{
	struct wref_stats st0 = ct_stats();
	wref_ref *r[20];
	for (int i = 0; i < 20; i++)
		r[i] = kill_with(cb_slow, i);
	ck_assert_int_eq(wref_flush(), 0);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(cb_runs[i], 1);
		ck_assert(!pthread_equal(cb_thread[i], pthread_self()));
		ck_assert(pthread_equal(cb_thread[i], cb_thread[0]));
		wref_release(r[i]);
	}
	struct wref_stats st1 = ct_stats();
	ck_assert_uint_ge(st1.callbacks_queued, st0.callbacks_queued + 20);
	/* everything queued before the flush returned has run */
	ck_assert_uint_eq(st1.callbacks_queued, st1.callbacks_run);
	ct_assert_no_leak(st0);
}
END_TEST

/* flush from several threads at once while callbacks are queued */
static void *flusher(void *p)
{
	int base = (int)(intptr_t)p;
	for (int i = 0; i < 10; i++) {
		wref_ref *r = kill_with(cb_count, base + i);
		if (wref_flush() != 0 || atomic_load(&cb_runs[base + i]) != 1)
			return (void *)1;
		wref_release(r);
	}
	return NULL;
}

START_TEST(test_flush_concurrent)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, flusher, (void *)(intptr_t)(i * 10));
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(t[i], &ret);
		ck_assert_ptr_null(ret);
	}
}
END_TEST

START_TEST(test_flush_in_callback)
{
	wref_ref *r = kill_with(cb_flush, 1);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 1);
	ck_assert_int_eq(cb_flush_ret[1], -EDEADLK);
	wref_release(r);
}
END_TEST

/* wref_flush in threads whose deaths start the executor: one thread
 * starts it while others queue; the new executor may take their items
 * into its batch before ex_running is stored, and a flush that then saw
 * "not running, queue empty" returned before their callbacks ran.  Each
 * trial is a fresh process, so the executor starts in every one.  A race:
 * before the fix a standalone copy of this failed 1 to 3 trials in 300
 * (plain build) and 4 in 100 (TSan), so this test catches it only now
 * and then; test_flush_concurrent did under TSan. */
START_TEST(test_flush_during_executor_start)
{
	int trials = ct_tsan() ? 40 : 200; /* a fork each */
	for (int k = 0; k < trials; k++) {
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			pthread_t t[4];
			void *ret;
			int bad = 0;
			for (int i = 0; i < 4; i++)
				pthread_create(&t[i], NULL, flusher,
					       (void *)(intptr_t)(i * 10));
			for (int i = 0; i < 4; i++) {
				pthread_join(t[i], &ret);
				bad |= ret != NULL;
			}
			_exit(bad);
		}
		int st;
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		ck_assert(WIFEXITED(st));
		ck_assert_msg(WEXITSTATUS(st) == 0 ||
			      (ct_tsan() && WEXITSTATUS(st) == 66),
			      "trial %d: a flush returned before a callback "
			      "queued before it ran", k);
	}
}
END_TEST

START_TEST(test_init_modes)
{
	wref_config bad = { .exec_mode = 7 };
	ck_assert_int_eq(wref_init(&bad), -EINVAL);
	ck_assert_int_eq(wref_init(NULL), 0);
	wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&inl), 0);
	ck_assert_int_eq(wref_init(&inl), 0); /* idempotent */

	/* inline: the callback ran on this thread before release returned */
	wref_ref *r = kill_with(cb_count, 1);
	ck_assert_int_eq(cb_runs[1], 1);
	ck_assert(pthread_equal(cb_thread[1], pthread_self()));
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 1);
	wref_release(r);
	/* flush from an inline callback: -EDEADLK too */
	r = kill_with(cb_flush, 2);
	ck_assert_int_eq(cb_runs[2], 1);
	ck_assert_int_eq(cb_flush_ret[2], -EDEADLK);
	wref_release(r);

	/* back to the thread mode */
	wref_config thr = { .exec_mode = WREF_EXEC_THREAD };
	ck_assert_int_eq(wref_init(&thr), 0);
	r = kill_with(cb_count, 3);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[3], 1);
	ck_assert(!pthread_equal(cb_thread[3], pthread_self()));
	wref_release(r);
}
END_TEST

/* inline mode: a callback that kills objects with callbacks of their own;
 * all run on this thread before the outermost release returns, no
 * recursion */
static void *inl_objs[100];
static void cb_inline_chain(wref_ref *r, void *arg)
{
	int i = (int)(intptr_t)arg;
	atomic_fetch_add(&cb_runs[i], 1);
	wref_release(r);
	if (i + 1 < 100)
		wref_release(inl_objs[i + 1]);
}

START_TEST(test_inline_cascade)
{
	wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&inl), 0);
	struct wref_stats st0 = ct_stats();
	for (int i = 0; i < 100; i++) {
		inl_objs[i] = wref_new(&obj_type, 8);
		ck_assert_ptr_nonnull(wref_ref_new(inl_objs[i], cb_inline_chain,
						   (void *)(intptr_t)i));
	}
	wref_release(inl_objs[0]);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(cb_runs[i], 1);
	ct_assert_no_leak(st0);
}
END_TEST

/*
 * Issue 16 item 12: inline mode, wref_flush and wref_shutdown from a
 * destroy.  On 8a36efc the dying object's own callback was queued before
 * its destroy and ran only once the destroy returned, so a flush there
 * returned 0 with it pending.  Now (item 10) a death's callbacks are queued
 * after its destroy returned, so inside the destroy they are not queued
 * yet: flush returns 0 having waited for what was queued before it, and
 * the callback runs after the destroy (test_inline_flush_from_destroy).
 * Work that IS queued and pending on this thread when a destroy calls
 * flush (here: a weak key that died inside the destroy queues its value's
 * release) cannot run before the destroy returns: flush says so with
 * -EDEADLK and wref_shutdown does nothing, as from a callback
 * (test_inline_flush_pending_from_destroy; before the fix flush returned 0
 * with that work pending).
 */
static _Atomic int d_flush_ret, d_cb_ran_at_flush, d_fin_ran;
static wref_finalizer *d_fin;
static void d_fin_fn(void *arg)
{
	(void)arg;
	atomic_fetch_add(&d_fin_ran, 1);
}
static void flushing_destroy(void *p)
{
	(void)p;
	atomic_store(&d_flush_ret, wref_flush());
	atomic_store(&d_cb_ran_at_flush, atomic_load(&cb_runs[1]));
}
static const wref_type flushing_type = { .name = "flushing",
					 .destroy = flushing_destroy };

START_TEST(test_inline_flush_from_destroy)
{
	wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&inl), 0);
	void *o = wref_new(&flushing_type, 8);
	wref_ref *r = wref_ref_new(o, cb_count, (void *)(intptr_t)1);
	ck_assert_ptr_nonnull(r);
	wref_release(o); /* destroy flushes */
	ck_assert_int_eq(atomic_load(&d_flush_ret), 0);
	/* the death's callback is queued after its destroy returned */
	ck_assert_int_eq(atomic_load(&d_cb_ran_at_flush), 0);
	ck_assert_int_eq(atomic_load(&cb_runs[1]), 1);
	wref_release(r);
}
END_TEST

static _Atomic int v_released;
static void v_destroy(void *p)
{
	(void)p;
	atomic_fetch_add(&v_released, 1);
}
static const wref_type v_type = { .name = "value", .destroy = v_destroy };
struct holder {
	void *key; /* the holder's only ref to a weak key of a keymap */
};
static void holder_destroy(void *p)
{
	struct holder *h = p;
	wref_release(h->key); /* the key dies: its value's release queued */
	atomic_store(&d_flush_ret, wref_flush());
	atomic_store(&d_cb_ran_at_flush, atomic_load(&v_released));
	wref_shutdown();
}
static const wref_type holder_type = { .name = "holder",
				       .destroy = holder_destroy };

START_TEST(test_inline_flush_pending_from_destroy)
{
	wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&inl), 0);
	atomic_store(&d_fin_ran, 0);
	atomic_store(&v_released, 0);
	void *keep = wref_new(&obj_type, 8);
	d_fin = wref_finalize(keep, d_fin_fn, NULL, WREF_FIN_ATEXIT);
	ck_assert_ptr_nonnull(d_fin);
	wref_keymap *km = wref_keymap_new(NULL);
	struct holder *h = wref_new(&holder_type, sizeof *h);
	h->key = wref_new(&obj_type, 8);
	void *v = wref_new(&v_type, 8);
	ck_assert(km && h && h->key && v);
	ck_assert_int_eq(wref_keymap_set(km, h->key, v), 0);
	wref_release(v); /* the map holds it */
	wref_release(h); /* destroy: kills the key, flushes, shuts down */
	ck_assert_int_eq(atomic_load(&v_released), 1);
	ck_assert_msg(atomic_load(&d_flush_ret) == -EDEADLK ||
		      atomic_load(&d_cb_ran_at_flush) == 1,
		      "wref_flush from a destroy returned %d with the value's "
		      "release still pending", atomic_load(&d_flush_ret));
	ck_assert_int_eq(atomic_load(&d_flush_ret), -EDEADLK);
	/* shutdown from there did nothing: the at-exit finalizer is armed */
	ck_assert_int_eq(atomic_load(&d_fin_ran), 0);
	ck_assert(wref_finalizer_alive(d_fin));
	ck_assert_int_eq(wref_flush(), 0); /* outside: fine */
	wref_shutdown();
	ck_assert_int_eq(atomic_load(&d_fin_ran), 1);
	wref_release(d_fin);
	wref_release(keep);
	wref_release(km);
}
END_TEST

/* a callback that blocks the executor until released */
static _Atomic int gate, gate_started;
static void cb_gate(wref_ref *r, void *arg)
{
	atomic_store(&gate_started, 1);
	while (!atomic_load(&gate))
		usleep(200);
	cb_count(r, arg);
}

static void wait_started(void)
{
	while (!atomic_load(&gate_started))
		usleep(200);
}

START_TEST(test_init_busy)
{
	atomic_store(&gate, 0);
	atomic_store(&gate_started, 0);
	wref_ref *g = kill_with(cb_gate, 0);
	wait_started();
	wref_ref *r = kill_with(cb_count, 1); /* stays queued */
	wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&inl), -EBUSY);
	atomic_store(&gate, 1);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[0], 1);
	ck_assert_int_eq(cb_runs[1], 1);
	ck_assert_int_eq(wref_init(&inl), 0);
	ck_assert_int_eq(wref_init(NULL), 0);
	wref_release(g);
	wref_release(r);
}
END_TEST

/*
 * Issue 16 item 11: callbacks the executor has already taken off the
 * shared queue (its current batch) are pending too.  gate0 holds the
 * executor while gate1 and cb 2 queue behind it; opening gate0 lets the
 * executor take both in one batch and block in gate1, with cb 2 still in
 * its batch and the shared queue empty.  Before the fix wref_init(INLINE)
 * returned 0 here (every run), and the next wref_flush() returned before
 * either callback ran.
 */
static _Atomic int gate1, gate1_started;
static void cb_gate1(wref_ref *r, void *arg)
{
	atomic_store(&gate1_started, 1);
	while (!atomic_load(&gate1))
		usleep(200);
	cb_count(r, arg);
}

START_TEST(test_init_busy_batch)
{
	atomic_store(&gate, 0);
	atomic_store(&gate_started, 0);
	atomic_store(&gate1, 0);
	atomic_store(&gate1_started, 0);
	wref_ref *g0 = kill_with(cb_gate, 0);
	wait_started();
	wref_ref *g1 = kill_with(cb_gate1, 1);
	wref_ref *r = kill_with(cb_count, 2);
	atomic_store(&gate, 1);
	while (!atomic_load(&gate1_started))
		usleep(200);
	wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&inl), -EBUSY);
	atomic_store(&gate1, 1);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&cb_runs[1]), 1);
	ck_assert_int_eq(atomic_load(&cb_runs[2]), 1);
	ck_assert_int_eq(wref_init(&inl), 0);
	ck_assert_int_eq(wref_init(NULL), 0);
	wref_release(g0);
	wref_release(g1);
	wref_release(r);
}
END_TEST

/*
 * Issue 18: the executor's pending count is its own (what it took into its
 * batch and has not finished), no longer a global counter bumped by every
 * producer.  The window in which a batch has left the shared queue but is
 * not yet counted must still read pending: here a thread calls
 * wref_init(INLINE) without pause while the executor moves from gate 0 to
 * the gate-1 callback queued behind it (taking gate 1 off the shared queue
 * in a batch of its own).  Gate 1 is pending throughout: every call must
 * return -EBUSY.
 */
static _Atomic int spam_stop;
static _Atomic long spam_zero, spam_calls;
static void *init_spammer(void *p)
{
	(void)p;
	wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
	while (!atomic_load(&spam_stop)) {
		int ret = wref_init(&inl);
		atomic_fetch_add(&spam_calls, 1);
		if (ret == 0) {
			atomic_fetch_add(&spam_zero, 1);
			wref_config thr = { .exec_mode = WREF_EXEC_THREAD };
			wref_init(&thr); /* put it back; the test fails anyway */
		}
	}
	return NULL;
}

START_TEST(test_init_busy_batch_taken)
{
	atomic_store(&spam_zero, 0);
	atomic_store(&spam_calls, 0);
	for (int round = 0; round < 50; round++) {
		atomic_store(&gate, 0);
		atomic_store(&gate_started, 0);
		atomic_store(&gate1, 0);
		atomic_store(&gate1_started, 0);
		atomic_store(&cb_runs[0], 0);
		atomic_store(&cb_runs[1], 0);
		wref_ref *g0 = kill_with(cb_gate, 0);
		wait_started(); /* gate 0 is the executor's whole batch */
		wref_ref *g1 = kill_with(cb_gate1, 1); /* on the shared queue */
		atomic_store(&spam_stop, 0);
		pthread_t t;
		ck_assert_int_eq(pthread_create(&t, NULL, init_spammer, NULL),
				 0);
		atomic_store(&gate, 1); /* the executor takes gate 1 */
		while (!atomic_load(&gate1_started))
			sched_yield();
		atomic_store(&spam_stop, 1);
		pthread_join(t, NULL);
		atomic_store(&gate1, 1);
		ck_assert_int_eq(wref_flush(), 0);
		ck_assert_int_eq(atomic_load(&cb_runs[0]), 1);
		ck_assert_int_eq(atomic_load(&cb_runs[1]), 1);
		wref_release(g0);
		wref_release(g1);
	}
	ck_assert_msg(atomic_load(&spam_zero) == 0, "wref_init returned 0 "
		      "%ld times of %ld with a callback pending",
		      atomic_load(&spam_zero), atomic_load(&spam_calls));
	/* nothing pending any more: the mode changes */
	wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&inl), 0);
	ck_assert_int_eq(wref_init(NULL), 0);
}
END_TEST

/* INLINE -> THREAD: another thread's inline callback, running, is pending
 * too; before the fix only the calling thread's inline queue was looked at
 * (returned 0 every run) */
static void *inl_other(void *p)
{
	(void)p;
	wref_ref *r0 = kill_with(cb_gate, 0); /* runs cb 0 here, gated */
	wref_ref *r1 = kill_with(cb_count, 1);
	wref_release(r0);
	wref_release(r1);
	return NULL;
}

START_TEST(test_init_busy_other_thread_inline)
{
	wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
	wref_config thr = { .exec_mode = WREF_EXEC_THREAD };
	ck_assert_int_eq(wref_init(&inl), 0);
	atomic_store(&gate, 0);
	atomic_store(&gate_started, 0);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, inl_other, NULL), 0);
	wait_started();
	ck_assert_int_eq(wref_init(&thr), -EBUSY);
	atomic_store(&gate, 1);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&cb_runs[0]), 1);
	ck_assert_int_eq(atomic_load(&cb_runs[1]), 1);
	ck_assert(pthread_equal(cb_thread[0], t));
	ck_assert_int_eq(wref_init(&thr), 0);
}
END_TEST

START_TEST(test_shutdown_restart)
{
	struct wref_stats st0 = ct_stats();
	wref_ref *r[30];
	for (int i = 0; i < 30; i++)
		r[i] = kill_with(i % 3 ? cb_count : cb_slow, i);
	wref_shutdown(); /* drains */
	for (int i = 0; i < 30; i++) {
		ck_assert_int_eq(cb_runs[i], 1);
		wref_release(r[i]);
	}
	wref_shutdown(); /* twice: nothing runs twice */
	for (int i = 0; i < 30; i++)
		ck_assert_int_eq(cb_runs[i], 1);
	/* the library restarts lazily */
	wref_ref *s = kill_with(cb_count, 40);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[40], 1);
	ck_assert(!pthread_equal(cb_thread[40], pthread_self()));
	wref_release(s);
	struct wref_stats st1 = ct_stats();
	ck_assert_uint_eq(st1.objects_created, st0.objects_created + 31 * 2);
	ck_assert_uint_eq(st1.callbacks_queued, st1.callbacks_run);
	ct_assert_no_leak(st0);
}
END_TEST

/*
 * wref_shutdown "waits for deferred frees": also those of dead objects
 * that another, still running, thread killed.
 * Regression test: failed from 40f681d to fe3224a (per-thread batched
 * call_rcu): a live thread's
 * partial batch (< RETIRE_BATCH retired objects) is handed to call_rcu
 * only when that thread flushes, exits or retires 32 objects, so
 * wref_shutdown()'s urcu_bp_barrier() cannot wait for it; the dead
 * objects' memory (here 3 x 4 KiB) and their control blocks stay
 * allocated indefinitely while the thread idles.
 */
static pthread_barrier_t idle_bar;
static void *kill_and_idle(void *p)
{
	(void)p;
	for (int i = 0; i < 3; i++) {
		void *o = wref_new(&obj_type, 4096);
		wref_ref *r = wref_ref_new(o, NULL, NULL);
		wref_release(o); /* dead: memory freed after a grace period */
		wref_release(r);
	}
	pthread_barrier_wait(&idle_bar); /* killed them */
	pthread_barrier_wait(&idle_bar); /* main checked */
	return NULL;
}

START_TEST(test_shutdown_frees_other_threads)
{
	struct wref_stats st0 = ct_stats();
	pthread_t t;
	pthread_barrier_init(&idle_bar, NULL, 2);
	pthread_create(&t, NULL, kill_and_idle, NULL);
	pthread_barrier_wait(&idle_bar);
	wref_shutdown();
	struct wref_stats st1 = ct_stats();
	pthread_barrier_wait(&idle_bar);
	pthread_join(t, NULL);
	ck_assert_uint_eq(st1.objects_live, st0.objects_live);
	ck_assert_msg(st1.blocks_live == st0.blocks_live, "wref_shutdown "
		      "returned with %llu control blocks (and their objects' "
		      "memory) still waiting for reclamation",
		      (unsigned long long)(st1.blocks_live - st0.blocks_live));
}
END_TEST

/*
 * Issue 16, suspected: wref_shutdown concurrent with a fork.  A fork in
 * progress (the fork flag set by fork_prepare, simulated here so that the
 * window stays open) made shutdown's hand-over of every thread's retired
 * memory park it back on its own list; urcu_bp_barrier() then waited for
 * nothing, and shutdown returned with the dead objects' memory and their
 * control blocks unreclaimed (3 blocks left, every run).  The flag is
 * cleared once shutdown returned (old code) or after a while (new code,
 * which waits for the fork to end).
 */
static _Atomic int sdf_done;
static void *fork_ender(void *p)
{
	(void)p;
	for (int i = 0; i < 500 && !atomic_load(&sdf_done); i++)
		usleep(1000);
	wref__fork_block(false); /* the fork ends */
	return NULL;
}

START_TEST(test_shutdown_during_fork)
{
	wref_shutdown(); /* the executor is stopped: nothing is queued */
	struct wref_stats st0 = ct_stats();
	for (int i = 0; i < 3; i++) {
		void *o = wref_new(&obj_type, 4096);
		wref_ref *r = wref_ref_new(o, NULL, NULL);
		wref_release(o); /* dead: memory freed after a grace period */
		wref_release(r);
	}
	atomic_store(&sdf_done, 0);
	wref__fork_block(true); /* a fork is in progress */
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, fork_ender, NULL), 0);
	wref_shutdown();
	struct wref_stats st1 = ct_stats();
	atomic_store(&sdf_done, 1);
	pthread_join(t, NULL);
	ck_assert_msg(st1.blocks_live == st0.blocks_live, "wref_shutdown "
		      "during a fork returned with %llu control blocks still "
		      "waiting for reclamation",
		      (unsigned long long)(st1.blocks_live - st0.blocks_live));
	wref_shutdown();
}
END_TEST

/*
 * Issue 16, suspected: a thread's statistics block dangling after it
 * exited.  The library's key destructor unlinks the block; a later key
 * destructor of the same thread that calls the library registered it
 * again, and after the last destructor round it stayed on the registry
 * while the thread's TLS went back to glibc.  The next thread, given the
 * same stack, re-initialised it (next = NULL: the rest of the registry
 * lost) and registered it again (next = itself): wref_stats() then looped
 * forever (hung every run; fails by the case's timeout), and counts were
 * lost.  Here user_key's destructor calls the library in every round.
 */
static pthread_key_t user_key;
static _Atomic int user_dtor_rounds;
static void user_dtor(void *v)
{
	(void)v;
	atomic_fetch_add(&user_dtor_rounds, 1);
	/* counted by this thread; its memory and block retired by it */
	void *o = wref_new(&obj_type, 8);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	wref_release(o);
	wref_release(r);
	pthread_setspecific(user_key, (void *)1); /* call me again */
}

static void *late_user(void *p)
{
	(void)p;
	wref_release(wref_new(&obj_type, 8));
	pthread_setspecific(user_key, (void *)1);
	return NULL;
}

START_TEST(test_stats_key_destructor_after_exit)
{
	struct wref_stats st0 = ct_stats();
	ck_assert_int_eq(pthread_key_create(&user_key, user_dtor), 0);
	atomic_store(&user_dtor_rounds, 0);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, late_user, NULL), 0);
	pthread_join(t, NULL);
	int rounds = atomic_load(&user_dtor_rounds);
	ck_assert_int_ge(rounds, 1);
	/* a second thread, likely on the first one's cached stack */
	ck_assert_int_eq(pthread_create(&t, NULL, late_user, NULL), 0);
	pthread_join(t, NULL);
	rounds = atomic_load(&user_dtor_rounds);
	struct wref_stats st1 = ct_stats(); /* hung here before the fix */
	/* each thread: one object in its body, two (an object and its
	 * weak ref) per destructor round */
	ck_assert_uint_eq(st1.objects_created,
			  st0.objects_created + 2 + 2 * (uint64_t)rounds);
	ck_assert_uint_eq(st1.objects_live, st0.objects_live);
	wref_release(wref_new(&obj_type, 8)); /* this thread still counts */
	struct wref_stats st2 = ct_stats();
	ck_assert_uint_eq(st2.objects_created, st1.objects_created + 1);
	pthread_key_delete(user_key);
	wref_shutdown(); /* frees what the destructors retired */
	struct wref_stats st3 = ct_stats();
	ck_assert_uint_eq(st3.blocks_live, st0.blocks_live);
}
END_TEST

START_TEST(test_stats_threads)
{
	/* counters of exited threads are kept */
	struct wref_stats st0 = ct_stats();
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, flusher, (void *)(intptr_t)(100 + i * 10));
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	struct wref_stats st1 = ct_stats();
	ck_assert_uint_eq(st1.objects_created, st0.objects_created + 60);
	ck_assert_uint_eq(st1.objects_live, st0.objects_live);
	ck_assert_uint_ge(st1.callbacks_run, st0.callbacks_run + 30);
}
END_TEST

/* ---- exit drain (rule 13) ----------------------------------------------- */

static void run_exit_helper(const char *mode)
{
	enum { N = 500, CHAIN = 100 };
	char cmd[8192];
	static int seen[N + CHAIN];
	memset(seen, 0, sizeof seen);
	snprintf(cmd, sizeof cmd, "'%s/test_exit' %s", self_dir, mode);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	char line[64];
	int total = 0, marker = 0, after_marker = 0;
	while (fgets(line, sizeof line, f)) {
		int id;
		ck_assert_int_eq(sscanf(line, "cb %d", &id), 1);
		if (id == -1) {
			marker++;
			continue;
		}
		ck_assert_int_ge(id, 0);
		ck_assert_int_lt(id, N + CHAIN);
		seen[id]++;
		total++;
		after_marker += marker;
	}
	int st = pclose(f);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	for (int i = 0; i < N + CHAIN; i++)
		ck_assert_msg(seen[i] == 1, "callback %d ran %d times", i,
			      seen[i]);
	ck_assert_int_eq(total, N + CHAIN);
	if (!strcmp(mode, "shutdown")) {
		ck_assert_int_eq(marker, 1);
		ck_assert_int_eq(after_marker, 0);
	}
}

START_TEST(test_exit_return)
{
	run_exit_helper("return");
}
END_TEST

START_TEST(test_exit_shutdown)
{
	run_exit_helper("shutdown");
}
END_TEST

START_TEST(test_exit_from_thread)
{
	run_exit_helper("exit-thread");
}
END_TEST

/* ---- fork (rules 12, 18) ---------------------------------------------- */

/* in the child: plain checks, exit code names the first failure */
static int child_checks(int nqueued, int running_at_fork)
{
	if (wref_flush() != 0)
		return 10;
	for (int i = 1; i <= nqueued; i++)
		if (atomic_load(&cb_runs[i]) != 1)
			return 11; /* queued in the parent: ran in the child */
	if (atomic_load(&cb_runs[0]) != 0)
		return 12; /* the one running at fork time is the parent's */
	/* nothing is pending here once flushed (the parent's running item
	 * and its executor's batch count no more): the mode changes */
	wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
	if (wref_init(&inl) != 0 || wref_init(NULL) != 0)
		return 21;
	/* the library works: objects, refs, callbacks, flush */
	void *o = wref_new(&obj_type, 8);
	if (!o)
		return 13;
	wref_ref *a = wref_ref_new(o, NULL, NULL);
	wref_ref *b = wref_ref_new(o, cb_count, (void *)(intptr_t)50);
	if (!a || !b || wref_ref_get(a) != o)
		return 14;
	wref_release(o);
	wref_release(o);
	if (wref_ref_alive(a) || wref_flush() != 0)
		return 15;
	if (atomic_load(&cb_runs[50]) != 1)
		return 16;
	if (pthread_equal(cb_thread[50], pthread_self()))
		return 17; /* ran on the child's own executor thread */
	wref_release(a);
	wref_release(b);
	struct wref_stats s = ct_stats();
	/* the item running at fork time was counted queued, never runs here */
	if (s.callbacks_queued != s.callbacks_run + running_at_fork)
		return 18;
	/* threads work in the child too */
	pthread_t t;
	void *ret = (void *)1;
	if (pthread_create(&t, NULL, flusher, (void *)(intptr_t)60) != 0)
		return 19;
	pthread_join(t, &ret);
	if (ret)
		return 20;
	wref_shutdown();
	return 0;
}

/* the child reports its result through a pipe: under ThreadSanitizer a
 * child forked from a multithreaded process may exit with TSan's own code
 * 66 after an internal "dup thread" complaint (fork is not supported by
 * TSan beyond die_after_fork=0), which says nothing about libwref */
static void child_exit(int fds[2], int code)
{
	unsigned char c = (unsigned char)code;
	close(fds[0]);
	if (write(fds[1], &c, 1) != 1)
		_exit(98);
	_exit(code);
}

static void wait_child(pid_t pid, int fds[2])
{
	unsigned char c = 99;
	int st;
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], &c, 1), 1);
	close(fds[0]);
	ck_assert_msg(c == 0, "child check %d failed", c);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	ck_assert(WEXITSTATUS(st) == 0 ||
		  (ct_tsan() && WEXITSTATUS(st) == 66));
}

/* block the executor in a gated callback (id 0) and queue @q callbacks
 * (ids 1..q) behind it; returns the gated ref */
static wref_ref *block_executor(wref_ref **r, int q)
{
	atomic_store(&gate, 0);
	atomic_store(&gate_started, 0);
	wref_ref *g = kill_with(cb_gate, 0);
	wait_started();
	for (int i = 1; i <= q; i++)
		r[i] = kill_with(cb_count, i); /* queued behind the gate */
	return g;
}

/* the parent's side once the gate (if @g) opens: ids 0..q ran once each,
 * the child passed; releases the refs */
static void finish_fork(pid_t pid, int fds[2], wref_ref *g, wref_ref **r,
			int q)
{
	for (int i = g ? 0 : 1; i <= q; i++) /* id 0: the gated one */
		ck_assert_int_eq(atomic_load(&cb_runs[i]), 1);
	wait_child(pid, fds);
	wref_release(g);
	for (int i = 1; i <= q; i++)
		wref_release(r[i]);
}

static void do_fork_test(bool busy)
{
	enum { Q = 10 };
	wref_ref *g = NULL, *r[Q + 1] = { 0 };
	if (busy) {
		g = block_executor(r, Q);
	} else {
		/* executor running but idle */
		r[1] = kill_with(cb_count, 1);
		ck_assert_int_eq(wref_flush(), 0);
	}
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_exit(fds, child_checks(busy ? Q : 0, busy ? 1 : 0));
	atomic_store(&gate, 1);
	ck_assert_int_eq(wref_flush(), 0);
	finish_fork(pid, fds, g, r, busy ? Q : 1);
}

START_TEST(test_fork_busy)
{
	do_fork_test(true);
}
END_TEST

START_TEST(test_fork_idle)
{
	do_fork_test(false);
}
END_TEST

/* fork while other threads wait in wref_flush(): their flush barriers are
 * queued in the copy the child inherits, and the first threads the child
 * creates (liburcu's, in the fork handlers) get the flushers' stacks.
 * With barriers on the waiters' stacks and the child's queue rebuilt after
 * those threads started, the child hung or crashed in about 1 in 4 runs
 * of `tests/torture -s 4 -F` (2 cores; -F let forks into flushes, now
 * the default), and this test failed 5 runs of 5 (commit e26aba0). */
enum { FLUSHERS = 3, FORK_FLUSH_ROUNDS = 40 };
static _Atomic int flushers_in;
static void *gated_flusher(void *p)
{
	(void)p;
	atomic_fetch_add(&flushers_in, 1);
	return (void *)(intptr_t)wref_flush(); /* waits behind the gate */
}

static void fork_during_flush(void)
{
	enum { Q = 10 };
	wref_ref *g, *r[Q + 1];
	pthread_t t[FLUSHERS];
	atomic_store(&flushers_in, 0);
	g = block_executor(r, Q);
	for (int i = 0; i < FLUSHERS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, gated_flusher,
						NULL), 0);
	while (atomic_load(&flushers_in) < FLUSHERS)
		usleep(200);
	usleep(20000); /* let them queue their barriers */
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_exit(fds, child_checks(Q, 1));
	atomic_store(&gate, 1);
	for (int i = 0; i < FLUSHERS; i++) {
		void *ret = (void *)1;
		pthread_join(t[i], &ret);
		ck_assert_ptr_null(ret); /* every flusher returned 0 */
	}
	finish_fork(pid, fds, g, r, Q);
	for (int i = 0; i <= Q; i++)
		atomic_store(&cb_runs[i], 0);
}

START_TEST(test_fork_during_flush)
{
	/* one fork rarely catches the race: the child's new threads must
	 * reach a flusher's barrier before the queue is rebuilt */
	for (int i = 0; i < FORK_FLUSH_ROUNDS; i++)
		fork_during_flush();
}
END_TEST

/* a callback forks while another thread stops the executor (the last step
 * of wref_shutdown): the stopper joined the executor holding the mutex
 * fork_prepare takes, so the fork never started (hung every run) */
static _Atomic int fork_cb_status;
static void cb_fork(wref_ref *r, void *arg)
{
	atomic_store(&gate_started, 1);
	while (!atomic_load(&gate))
		usleep(200);
	pid_t pid = fork();
	if (pid == 0) {
		/* the child: only this thread, still inside the callback,
		 * which is pending: no mode change */
		wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
		int busy = wref_init(&inl) == -EBUSY;
		void *o = wref_new(&obj_type, 8);
		wref_release(o);
		_exit(o && busy ? 0 : 1);
	}
	int st = 0;
	int ok = pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st);
	atomic_store(&fork_cb_status, ok ? WEXITSTATUS(st) : 100);
	cb_count(r, arg);
}

static void *stopper(void *p)
{
	(void)p;
	wref__executor_stop(); /* waits for the running callback */
	return NULL;
}

START_TEST(test_fork_in_callback_during_stop)
{
	atomic_store(&gate, 0);
	atomic_store(&gate_started, 0);
	atomic_store(&fork_cb_status, -1);
	wref_ref *r = kill_with(cb_fork, 0);
	wait_started();
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, stopper, NULL), 0);
	usleep(20000); /* let it reach the join */
	atomic_store(&gate, 1);
	pthread_join(t, NULL); /* a deadlock fails by the suite's timeout */
	ck_assert_int_eq(atomic_load(&fork_cb_status), 0);
	ck_assert_int_eq(atomic_load(&cb_runs[0]), 1);
	wref_release(r);
	/* the executor starts again on demand */
	wref_ref *r2 = kill_with(cb_count, 1);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&cb_runs[1]), 1);
	wref_release(r2);
}
END_TEST

/*
 * A callback on the executor forks and the child returns from it: that
 * thread is the child's executor and goes on with the rest of its batch
 * (issue 18: the batch is a plain chain the fork child keeps).  The item
 * queued behind the forking one, in the same batch, runs in the child
 * (where it reports through the pipe and exits) and in the parent.
 */
static pid_t fk_parent;
static int fk_fds[2];
static _Atomic int fk_child_status;
static void cb_after_fork(wref_ref *r, void *arg)
{
	if (getpid() != fk_parent) {
		/* the child, on the executor thread it inherited: this item
		 * is pending while it runs, so no mode change */
		wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
		unsigned char c = wref_init(&inl) == -EBUSY ? 0 : 41;
		if (write(fk_fds[1], &c, 1) != 1)
			_exit(98);
		_exit(c);
	}
	cb_count(r, arg);
}

static void cb_fork_return(wref_ref *r, void *arg)
{
	pid_t pid = fork();
	if (pid == 0)
		return; /* the child goes on with the executor's batch */
	int st = 0, code = 100;
	if (pid > 0) {
		unsigned char c = 99;
		for (int i = 0; i < 20000; i++) { /* 20 s */
			if (waitpid(pid, &st, WNOHANG) == pid) {
				code = WIFEXITED(st) ? WEXITSTATUS(st) : 101;
				break;
			}
			usleep(1000);
		}
		if (code == 100)
			kill(pid, SIGKILL); /* it never ran the next item */
		if (code == 0 && read(fk_fds[0], &c, 1) == 1)
			code = c;
	}
	atomic_store(&fk_child_status, code);
	cb_count(r, arg);
}

START_TEST(test_fork_in_callback_child_goes_on)
{
	fk_parent = getpid();
	atomic_store(&fk_child_status, -1);
	ck_assert_int_eq(pipe(fk_fds), 0);
	atomic_store(&gate, 0);
	atomic_store(&gate_started, 0);
	wref_ref *g = kill_with(cb_gate, 0);
	wait_started();
	/* both behind the gate: one batch once it opens */
	wref_ref *f = kill_with(cb_fork_return, 1);
	wref_ref *a = kill_with(cb_after_fork, 2);
	atomic_store(&gate, 1);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&fk_child_status), 0);
	for (int i = 0; i <= 2; i++)
		ck_assert_int_eq(atomic_load(&cb_runs[i]), 1);
	close(fk_fds[0]);
	close(fk_fds[1]);
	wref_release(g);
	wref_release(f);
	wref_release(a);
}
END_TEST

/* wref_flush racing wref_shutdown: a barrier queued after the stopping
 * executor's last look at the queue must still be run (by a new
 * executor), or the flusher waits forever */
static _Atomic int shutdowns_done;
static void *shutdown_loop(void *p)
{
	(void)p;
	for (int i = 0; i < 200; i++)
		wref_shutdown();
	atomic_store(&shutdowns_done, 1);
	return NULL;
}

START_TEST(test_flush_races_shutdown)
{
	atomic_store(&shutdowns_done, 0);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, shutdown_loop, NULL), 0);
	int n = 0;
	while (!atomic_load(&shutdowns_done) || n < 200) {
		int id = 100 + n % 100;
		atomic_store(&cb_runs[id], 0);
		wref_ref *r = kill_with(cb_count, id);
		ck_assert_int_eq(wref_flush(), 0); /* a hang fails by timeout */
		ck_assert_int_eq(atomic_load(&cb_runs[id]), 1);
		wref_release(r);
		n++;
	}
	pthread_join(t, NULL);
}
END_TEST

/*
 * Issue 16 item 3: fork() against a death callback queued while the
 * executor thread is not running.  The dying thread queues the callback
 * from inside cb_kill's RCU read-side section; starting the executor there
 * took ex_mutex, which fork_prepare holds while urcu_bp_call_rcu_before_fork
 * waits for the call_rcu thread, itself in synchronize_rcu() waiting for
 * that read-side section.  Made deterministic here: the dying thread holds
 * a read lock of its own around the release, with call_rcu work pending,
 * and releases only once the fork has begun (wref__forking()).  Before the
 * fix it hung every run (3 of 3) and failed by the case's timeout; the
 * loop in the issue (shutdown, deaths, fork) hung within 10-20 s.
 */
static _Atomic int dl_may_fork;
static struct rcu_head dl_head;
static void dl_noop(struct rcu_head *h)
{
	(void)h;
}

static void *dl_forker(void *p)
{
	int *fds = p;
	while (!atomic_load(&dl_may_fork))
		usleep(200);
	pid_t pid = fork();
	if (pid == 0) {
		/* the parked callback belongs to the child too; it runs on
		 * the child's executor, started lazily by the flush */
		int bad = wref_flush() != 0 || atomic_load(&cb_runs[1]) != 1;
		child_exit(fds, bad ? 30 : 0);
	}
	return (void *)(intptr_t)pid;
}

START_TEST(test_fork_vs_death_executor_stopped)
{
	int fds[2];
	pthread_t t;
	atomic_store(&dl_may_fork, 0);
	void *o = wref_new(&obj_type, 8);
	wref_ref *r = wref_ref_new(o, cb_count, (void *)(intptr_t)1);
	ck_assert_ptr_nonnull(r);
	wref_shutdown(); /* the executor is not running */
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, dl_forker, fds), 0);
	wref__rcu_lock();
	/* work for the call_rcu thread: it enters synchronize_rcu() and
	 * waits for this read-side section */
	urcu_bp_call_rcu(&dl_head, dl_noop);
	usleep(20000);
	atomic_store(&dl_may_fork, 1);
	while (!wref__forking()) /* fork_prepare holds ex_mutex now */
		usleep(200);
	wref_release(o); /* queues cb 1 from inside the read-side section */
	wref__rcu_unlock();
	void *ret;
	pthread_join(t, &ret);
	pid_t pid = (pid_t)(intptr_t)ret;
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&cb_runs[1]), 1);
	wait_child(pid, fds);
	wref_release(r);
}
END_TEST

/* issue 18: the fork guard's Dekker is asymmetric (a relaxed store and
 * load on the producer's side, membarrier(2) on the fork's).  Threads
 * kill objects with callbacks nonstop while the main thread forks: in
 * each child every death whose release returned before the fork has its
 * callback run after a flush (rule 18; a queue a fork cut in half would
 * lose them), bar the one the parent's executor was running. */
static _Atomic bool fp_stop;
static _Atomic long fp_done, fp_ran;

static void fp_cb(wref_ref *r, void *arg)
{
	(void)arg;
	atomic_fetch_add(&fp_ran, 1);
	wref_release(r);
}

static void *fp_producer(void *arg)
{
	(void)arg;
	while (!atomic_load(&fp_stop)) {
		/* a bounded backlog: the children copy it */
		if (atomic_load(&fp_done) - atomic_load(&fp_ran) > 256) {
			sched_yield();
			continue;
		}
		void *o = wref_new(&obj_type, 8);
		if (!o || !wref_ref_new(o, fp_cb, NULL))
			return (void *)1;
		wref_release(o);
		atomic_fetch_add(&fp_done, 1);
	}
	return NULL;
}

START_TEST(test_fork_vs_producers)
{
	enum { P = 2, FORKS = 20 };
	pthread_t t[P];
	atomic_store(&fp_stop, false);
	for (int i = 0; i < P; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, fp_producer, NULL),
				 0);
	for (int f = 0; f < FORKS; f++) {
		usleep(2000);
		int fds[2];
		ck_assert_int_eq(pipe(fds), 0);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			/* the producers are gone here; what they finished
			 * before the fork was queued before it */
			long done = atomic_load(&fp_done);
			int bad = wref_flush() != 0 ||
				  atomic_load(&fp_ran) < done - 1;
			child_exit(fds, bad ? 40 : 0);
		}
		wait_child(pid, fds);
	}
	atomic_store(&fp_stop, true);
	for (int i = 0; i < P; i++) {
		void *ret;
		pthread_join(t[i], &ret);
		ck_assert_ptr_null(ret);
	}
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&fp_ran), atomic_load(&fp_done));
}
END_TEST

START_TEST(test_fork_fresh)
{
	/* fork before the library started anything */
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_exit(fds, child_checks(0, 0));
	wait_child(pid, fds);
}
END_TEST

int main(int argc, char **argv)
{
	(void)argc;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", argv[0]);
	snprintf(self_dir, sizeof self_dir, "%s", dirname(tmp));

	Suite *s = suite_create("executor");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_flush_idle);
	tcase_add_test(tc, test_flush_waits);
	tcase_add_test(tc, test_flush_concurrent);
	tcase_add_test(tc, test_flush_during_executor_start);
	tcase_add_test(tc, test_flush_in_callback);
	tcase_add_test(tc, test_init_modes);
	tcase_add_test(tc, test_inline_cascade);
	tcase_add_test(tc, test_inline_flush_from_destroy);
	tcase_add_test(tc, test_inline_flush_pending_from_destroy);
	tcase_add_test(tc, test_init_busy);
	tcase_add_test(tc, test_init_busy_batch);
	tcase_add_test(tc, test_init_busy_other_thread_inline);
	tcase_add_test(tc, test_init_busy_batch_taken);
	tcase_add_test(tc, test_shutdown_restart);
	tcase_add_test(tc, test_stats_threads);
	tcase_add_test(tc, test_shutdown_frees_other_threads);
	tcase_add_test(tc, test_shutdown_during_fork);
	tcase_add_test(tc, test_flush_races_shutdown);
	tcase_add_test(tc, test_exit_return);
	tcase_add_test(tc, test_exit_shutdown);
	tcase_add_test(tc, test_exit_from_thread);
	/* ThreadSanitizer cannot follow a child forked from a process with
	 * running threads that starts threads of its own ("dup thread with
	 * used id", then it dies with halt_on_error=1): these two run in the
	 * plain build only */
	if (!ct_tsan()) {
		tcase_add_test(tc, test_fork_busy);
		tcase_add_test(tc, test_fork_idle);
		tcase_add_test(tc, test_fork_during_flush);
		tcase_add_test(tc, test_fork_in_callback_during_stop);
		tcase_add_test(tc, test_fork_in_callback_child_goes_on);
		tcase_add_test(tc, test_fork_vs_producers);
	}
	tcase_add_test(tc, test_fork_fresh);
	suite_add_tcase(s, tc);
	/* deadlocks: a short timeout, so that a hang fails quickly */
	tc = tcase_create("deadlock");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, NULL);
	if (!ct_tsan())
		tcase_add_test(tc, test_fork_vs_death_executor_stopped);
	/* ThreadSanitizer tears its own thread state down in the last key
	 * destructor round, before ours: instrumented code there crashes */
	if (!ct_tsan())
		tcase_add_test(tc, test_stats_key_destructor_after_exit);
	suite_add_tcase(s, tc);
	return ct_run_suite(s);
}
