/*
 * unit/fork_order.c - lib/fork.c on its own (issue 14 item 2): an upper
 * layer's slot (wref__on_fork) runs where fork.c's documented order puts
 * it.  Prepare: before the fork flag is set (P1 before P4).  Parent and
 * child: after the core's steps, so the thread registry is free again
 * (wref_stats takes its lock) and the flag is clear; in the child the
 * library works from inside the step (a weak ref's callback runs on the
 * restarted executor).  A cleared slot is not called.  The test program
 * makes no retention tier, so the tier slot is free for the test.
 */
#include "core_test.h"

#include <sys/wait.h>

static char log_buf[16];
static int log_len;
static bool bad_order;
static _Atomic int cb_runs;

static void note(char c)
{
	if (log_len < (int)sizeof log_buf - 1)
		log_buf[log_len++] = c;
}

static void step_prepare(void)
{
	note('p');
	if (wref__forking()) /* P1 runs before P4 sets the flag */
		bad_order = true;
}

static void step_parent(void)
{
	struct wref_stats st;
	note('P');
	if (wref__forking()) /* P4 cleared it before */
		bad_order = true;
	wref_stats(&st); /* the registry (P6) is free: no self-deadlock */
}

static void on_death(wref_ref *r, void *arg)
{
	atomic_fetch_add(&cb_runs, 1);
}

static const wref_type plain_type = { .name = "plain" };

static void step_child(void)
{
	struct wref_stats st;
	note('C');
	if (wref__forking())
		bad_order = true;
	wref_stats(&st);
	/* the library works here: liburcu and the executor are back */
	void *o = wref_new(&plain_type, 8);
	wref_ref *r = o ? wref_ref_new(o, on_death, NULL) : NULL;
	if (!r) {
		bad_order = true;
		return;
	}
	wref_release(o);
	wref_flush();
	if (atomic_load(&cb_runs) != 1)
		bad_order = true;
	wref_release(r);
}

/* the child reports through its exit status: 0 ok, 1 order, 2 log */
static int fork_and_check(const char *want_parent, const char *want_child)
{
	log_len = 0;
	memset(log_buf, 0, sizeof log_buf);
	bad_order = false;
	pid_t pid = fork();
	if (pid == 0) {
		int rc = bad_order ? 1 : strcmp(log_buf, want_child) ? 2 : 0;
		_exit(rc);
	}
	ck_assert_int_gt(pid, 0);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_str_eq(log_buf, want_parent);
	ck_assert(!bad_order);
	return WEXITSTATUS(status);
}

START_TEST(slot_runs_in_order)
{
	/* some library state on this thread before the fork */
	void *o = wref_new(&plain_type, 8);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	wref__on_fork(WREF_FORK_TIERS, step_prepare, step_parent, step_child);
	ck_assert_int_eq(fork_and_check("pP", "pC"), 0);
	/* a cleared slot is skipped */
	wref__on_fork(WREF_FORK_TIERS, NULL, NULL, NULL);
	ck_assert_int_eq(fork_and_check("", ""), 0);
	wref_release(r);
	wref_release(o);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("unit: fork order");
	TCase *tc = tcase_create("fork");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, slot_runs_in_order);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
