/*
 * unit/rcu_handback.c - lib/rcu.c's hand-back on its own: memory a thread
 * retires is freed by liburcu's call_rcu thread if its grace period ended
 * on time, else by that thread (the call_rcu thread only hands each late
 * batch back; the test makes every batch late), a few heads per later
 * retirement, all at wref__rcu_flush_local or the thread's exit; a thread
 * that is gone before its batch's grace period ends has it freed on the
 * call_rcu thread; a fork child frees what the threads it lost had taken
 * back; wref_shutdown's step frees what came back to a live thread; a
 * callback that retires is not run re-entrantly.  Each head's
 * callback must run exactly once.
 *
 * Why: the call_rcu thread used to free everything every thread retired.
 * With 32 threads on 2 CPUs it got 1/33 of the CPUs and retired memory
 * grew for as long as the load lasted (bench/peers oversub rows: 89 MB
 * after 1 s, 280 MB after 4 s).
 */
#include "core_test.h"

#include <sys/wait.h>

#define NI (3 * WREF__RETIRE_BATCH + 8)

struct item {
	struct rcu_head rh;
	pthread_t ran_on;
	_Atomic int runs;
	struct item *chain; /* retired by this one's callback */
};
static struct item items[NI];

static void item_cb(struct rcu_head *h)
{
	wref__rcu_tsan_after_gp(h);
	struct item *it = caa_container_of(h, struct item, rh);
	it->ran_on = pthread_self();
	atomic_fetch_add(&it->runs, 1);
	if (it->chain) /* a callback that retires (must not nest the step) */
		wref__call_rcu(&it->chain->rh, item_cb);
}

static void reset(void)
{
	for (int i = 0; i < NI; i++) {
		items[i].ran_on = 0;
		atomic_store(&items[i].runs, 0);
		items[i].chain = NULL;
	}
}

static int ran(int from, int to)
{
	int n = 0;
	for (int i = from; i < to; i++)
		n += atomic_load(&items[i].runs);
	return n;
}

static bool ran_on(int from, int to, pthread_t th)
{
	for (int i = from; i < to; i++)
		if (atomic_load(&items[i].runs) != 1 ||
		    !pthread_equal(items[i].ran_on, th))
			return false;
	return true;
}

static void retire(int from, int to)
{
	for (int i = from; i < to; i++)
		wref__call_rcu(&items[i].rh, item_cb);
}

/* run @body(&fail) on a new thread (a fresh home); its fail code */
static int on_new_thread(void *(*body)(void *))
{
	int fail = 0;
	pthread_t th;
	reset();
	ck_assert_int_eq(pthread_create(&th, NULL, body, &fail), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	return fail;
}

/* ---- the owner frees, a few heads per retirement --------------------- */

static void *owner_body(void *arg)
{
	int *fail = arg;
	const int B = WREF__RETIRE_BATCH;
	retire(0, 2 * B);      /* two batches handed over */
	urcu_bp_barrier();     /* their grace period is over: back home */
	if (ran(0, 2 * B) != 0)
		*fail = 1;     /* the call_rcu thread freed a live thread's */
	retire(2 * B, 2 * B + 1);
	/* one retirement frees WREF__HOME_STEP of them, no more */
	if (ran(0, 2 * B) != WREF__HOME_STEP)
		*fail = 2;
	/* wref_flush frees all that came back (wref.h), and hands the 1
	 * over */
	if (wref_flush() != 0)
		*fail = 5;
	if (!ran_on(0, 2 * B, pthread_self()))
		*fail = 3;
	urcu_bp_barrier();
	wref__rcu_flush_local();
	if (!ran_on(2 * B, 2 * B + 1, pthread_self()))
		*fail = 4;
	return NULL;
}

START_TEST(owner_frees_its_batches)
{
	ck_assert_int_eq(on_new_thread(owner_body), 0);
}
END_TEST

/* ---- on time: liburcu's call_rcu thread frees ----------------------- */

static void *on_time_body(void *arg)
{
	int *fail = arg;
	retire(0, WREF__RETIRE_BATCH);
	urcu_bp_barrier(); /* freed by the call_rcu thread, not ours */
	for (int i = 0; i < WREF__RETIRE_BATCH; i++)
		if (atomic_load(&items[i].runs) != 1 ||
		    pthread_equal(items[i].ran_on, pthread_self()))
			*fail = 1;
	return NULL;
}

START_TEST(on_time_batches_freed_by_call_rcu)
{
	atomic_store(&wref__rcu_late_ns, UINT64_MAX);
	int fail = on_new_thread(on_time_body);
	atomic_store(&wref__rcu_late_ns, 0);
	ck_assert_int_eq(fail, 0);
}
END_TEST

/* ---- exits: back home before, or still in flight ---------------------- */

static void *exit_home_body(void *arg)
{
	(void)arg;
	retire(0, WREF__RETIRE_BATCH);
	urcu_bp_barrier(); /* back home; freed by the exit step */
	return NULL;
}

static void *exit_flight_body(void *arg)
{
	(void)arg;
	/* a full batch in flight, and a partial one the exit hands over */
	retire(0, WREF__RETIRE_BATCH + 3);
	return NULL;
}

START_TEST(exiting_thread_frees_or_leaves_to_call_rcu)
{
	pthread_t th;
	reset();
	ck_assert_int_eq(pthread_create(&th, NULL, exit_home_body, NULL), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert(ran_on(0, WREF__RETIRE_BATCH, th));

	reset();
	ck_assert_int_eq(pthread_create(&th, NULL, exit_flight_body, NULL), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	urcu_bp_barrier(); /* the home is gone: run where they land */
	ck_assert_int_eq(ran(0, WREF__RETIRE_BATCH + 3),
			 WREF__RETIRE_BATCH + 3);
	for (int i = 0; i < WREF__RETIRE_BATCH + 3; i++)
		ck_assert_int_eq(atomic_load(&items[i].runs), 1);
}
END_TEST

/* ---- a callback that retires ------------------------------------------ */

static void *chain_body(void *arg)
{
	int *fail = arg;
	const int B = WREF__RETIRE_BATCH;
	/* every head of the first batch retires one more when freed */
	for (int i = 0; i < B; i++)
		items[i].chain = &items[B + i];
	retire(0, B);
	urcu_bp_barrier();
	/* each step frees heads whose callbacks retire: those retirements
	 * must not free from the batch being walked */
	for (int round = 0; round < 4; round++) {
		wref__rcu_flush_local();
		urcu_bp_barrier();
	}
	wref__rcu_flush_local();
	if (!ran_on(0, 2 * B, pthread_self()))
		*fail = 1;
	return NULL;
}

START_TEST(callback_that_retires)
{
	ck_assert_int_eq(on_new_thread(chain_body), 0);
}
END_TEST

static pthread_mutex_t park_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cv = PTHREAD_COND_INITIALIZER;
static int park_state; /* 1: parked, 2: go on */

/* a test thread: say it is parked, wait until told to go on */
static void park(void)
{
	pthread_mutex_lock(&park_mu);
	park_state = 1;
	pthread_cond_broadcast(&park_cv);
	while (park_state != 2)
		pthread_cond_wait(&park_cv, &park_mu);
	pthread_mutex_unlock(&park_mu);
}

/* ---- shutdown: what came back to a live thread is freed -------------- */

static void *park_body(void *arg)
{
	(void)arg;
	retire(0, WREF__RETIRE_BATCH);
	urcu_bp_barrier(); /* back home, not freed: this thread is parked */
	park();
	return NULL;
}

START_TEST(shutdown_frees_live_threads_batches)
{
	reset();
	pthread_t th;
	park_state = 0;
	ck_assert_int_eq(pthread_create(&th, NULL, park_body, NULL), 0);
	pthread_mutex_lock(&park_mu);
	while (park_state != 1)
		pthread_cond_wait(&park_cv, &park_mu);
	pthread_mutex_unlock(&park_mu);
	ck_assert_int_eq(ran(0, WREF__RETIRE_BATCH), 0);
	wref__rcu_drain_all(); /* wref_shutdown's step, after its barrier */
	for (int i = 0; i < WREF__RETIRE_BATCH; i++)
		ck_assert_int_eq(atomic_load(&items[i].runs), 1);
	pthread_mutex_lock(&park_mu);
	park_state = 2;
	pthread_cond_broadcast(&park_cv);
	pthread_mutex_unlock(&park_mu);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	/* its exit found nothing more to free */
	for (int i = 0; i < WREF__RETIRE_BATCH; i++)
		ck_assert_int_eq(atomic_load(&items[i].runs), 1);
}
END_TEST

/* ---- fork: the child frees what a lost thread had taken back --------- */


static void *fork_body(void *arg)
{
	int *fail = arg;
	const int B = WREF__RETIRE_BATCH;
	retire(0, 2 * B);
	urcu_bp_barrier();
	/* one retirement: the home's list is now this thread's, 2 freed,
	 * the rest waiting; and one partial batch not handed over */
	retire(2 * B, 2 * B + 1);
	park();
	wref__rcu_flush_local();
	urcu_bp_barrier();
	wref__rcu_flush_local();
	if (!ran_on(0, 2 * B + 1, pthread_self()))
		*fail = 1;
	return NULL;
}

START_TEST(fork_child_frees_lost_threads_batches)
{
	const int N = 2 * WREF__RETIRE_BATCH + 1;
	reset();
	int fail = 0;
	pthread_t th;
	park_state = 0;
	ck_assert_int_eq(pthread_create(&th, NULL, fork_body, &fail), 0);
	pthread_mutex_lock(&park_mu);
	while (park_state != 1)
		pthread_cond_wait(&park_cv, &park_mu);
	pthread_mutex_unlock(&park_mu);
	ck_assert_int_eq(ran(0, N), WREF__HOME_STEP);
	pid_t pid = fork();
	if (pid == 0) {
		/* the child lost the thread: its taken-back batch and its
		 * partial one were re-retired by the fork child step */
		for (int round = 0; round < 3; round++) {
			wref__rcu_flush_local();
			urcu_bp_barrier();
		}
		wref__rcu_flush_local();
		for (int i = 0; i < N; i++)
			if (atomic_load(&items[i].runs) != 1)
				_exit(1);
		_exit(0);
	}
	ck_assert_int_gt(pid, 0);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	pthread_mutex_lock(&park_mu);
	park_state = 2;
	pthread_cond_broadcast(&park_cv);
	pthread_mutex_unlock(&park_mu);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(fail, 0);
}
END_TEST

int main(void)
{
	/* a static link pulls in lib/fork.c (the atfork handlers) only if
	 * something names it; the shared library always has it.  The test
	 * makes no tier: clearing the tiers' slot changes nothing */
	wref__on_fork(WREF_FORK_TIERS, NULL, NULL, NULL);
	/* every batch is "late": it comes back to its thread (the default
	 * waits for a grace period that ended WREF__RCU_LATE_NS after the
	 * hand-over, a sign of a call_rcu thread short of CPU) */
	atomic_store(&wref__rcu_late_ns, 0);
	Suite *s = suite_create("unit: rcu hand-back");
	TCase *tc = tcase_create("handback");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, owner_frees_its_batches);
	tcase_add_test(tc, on_time_batches_freed_by_call_rcu);
	tcase_add_test(tc, exiting_thread_frees_or_leaves_to_call_rcu);
	tcase_add_test(tc, callback_that_retires);
	tcase_add_test(tc, shutdown_frees_live_threads_batches);
	tcase_add_test(tc, fork_child_frees_lost_threads_batches);
	suite_add_tcase(s, tc);
	return ct_run_suite(s);
}
