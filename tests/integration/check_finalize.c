/*
 * check_finalize.c - Python's weakref.finalize: runs once at death (on the
 * executor), on call (on the caller), or at exit with WREF_FIN_ATEXIT;
 * detach and peek; the handle may be released while armed.
 */
#include "core_test.h"

#include <sys/wait.h>

struct obj {
	int v;
};
static const wref_type obj_type = { .name = "obj" };
static const wref_type noweak_type = { .name = "noweak",
				       .flags = WREF_TYPE_NO_WEAK };

static _Atomic int runs;
static pthread_t ran_on;
static void count_run(void *arg)
{
	runs++;
	ran_on = pthread_self();
	if (arg)
		(*(int *)arg)++;
}

START_TEST(test_bad_args)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	errno = 0;
	ck_assert_ptr_null(wref_finalize(NULL, count_run, NULL, 0));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_finalize(o, NULL, NULL, 0));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_finalize(o, count_run, NULL, 0x80));
	ck_assert_int_eq(errno, EINVAL);
	void *nw = wref_new(&noweak_type, 8);
	errno = 0;
	ck_assert_ptr_null(wref_finalize(nw, count_run, NULL, 0));
	ck_assert_int_eq(errno, EINVAL);
	wref_release(nw);
	void *a = &a;
	ck_assert(!wref_finalizer_alive(NULL));
	ck_assert(!wref_finalizer_call(NULL));
	ck_assert(!wref_finalizer_detach(NULL, &a));
	ck_assert(!wref_finalizer_peek(NULL, &a));
	ck_assert_ptr_eq(a, &a); /* untouched */
	wref_finalizer_set_atexit(NULL, true); /* no-op */
	wref_release(o);
	ck_assert_int_eq(runs, 0);
}
END_TEST

START_TEST(test_runs_at_death_on_executor)
{
	struct wref_stats start = ct_stats();
	int hits = 0;
	runs = 0;
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_finalizer *f = wref_finalize(o, count_run, &hits, 0);
	ck_assert_ptr_nonnull(f);
	ck_assert(wref_finalizer_alive(f));
	/* held weakly: the object's counts are untouched */
	ck_assert_uint_eq(wref_strong_count(o), 1);
	ck_assert_uint_eq(wref_weak_count(o), 0);
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(runs, 1);
	ck_assert_int_eq(hits, 1);
	ck_assert(!pthread_equal(ran_on, pthread_self()));
	ck_assert(!wref_finalizer_alive(f));
	ck_assert(!wref_finalizer_call(f));
	ck_assert(!wref_finalizer_detach(f, NULL));
	ck_assert(!wref_finalizer_peek(f, NULL));
	ck_assert_int_eq(runs, 1);
	wref_release(f);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_armed_after_handle_release)
{
	struct wref_stats start = ct_stats();
	int hits = 0;
	runs = 0;
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_release(wref_finalize(o, count_run, &hits, 0));
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(runs, 0);
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(runs, 1);
	ck_assert_int_eq(hits, 1);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_call)
{
	struct wref_stats start = ct_stats();
	int hits = 0;
	runs = 0;
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_finalizer *f = wref_finalize(o, count_run, &hits, 0);
	ck_assert(wref_finalizer_call(f));
	ck_assert_int_eq(hits, 1);
	ck_assert(pthread_equal(ran_on, pthread_self())); /* on the caller */
	ck_assert(!wref_finalizer_alive(f));
	ck_assert(!wref_finalizer_call(f)); /* at most once */
	ck_assert(!wref_finalizer_detach(f, NULL));
	wref_release(o); /* the death does not run it again */
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(runs, 1);
	ck_assert_int_eq(hits, 1);
	wref_release(f);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_detach_and_peek)
{
	struct wref_stats start = ct_stats();
	int hits = 0;
	runs = 0;
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_finalizer *f = wref_finalize(o, count_run, &hits, 0);
	void *arg = NULL;
	ck_assert(wref_finalizer_peek(f, &arg));
	ck_assert_ptr_eq(arg, &hits);
	ck_assert(wref_finalizer_peek(f, NULL));
	ck_assert(wref_finalizer_alive(f)); /* peek does not disarm */
	arg = NULL;
	ck_assert(wref_finalizer_detach(f, &arg));
	ck_assert_ptr_eq(arg, &hits);
	ck_assert(!wref_finalizer_alive(f));
	arg = NULL;
	ck_assert(!wref_finalizer_detach(f, &arg));
	ck_assert_ptr_null(arg);
	ck_assert(!wref_finalizer_peek(f, &arg));
	ck_assert(!wref_finalizer_call(f));
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(runs, 0);
	wref_release(f);

	/* detach with no out pointer, after the handle was kept alone */
	o = wref_new(&obj_type, sizeof *o);
	f = wref_finalize(o, count_run, NULL, 0);
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert(!wref_finalizer_detach(f, NULL)); /* already ran */
	ck_assert_int_eq(runs, 1);
	wref_release(f);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_many_on_one_object)
{
	struct wref_stats start = ct_stats();
	int hits[8] = { 0 };
	runs = 0;
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_finalizer *keep = NULL;
	for (int i = 0; i < 8; i++) {
		wref_finalizer *f = wref_finalize(o, count_run, &hits[i], 0);
		if (i == 3)
			keep = f;
		else
			wref_release(f);
	}
	ck_assert(wref_finalizer_detach(keep, NULL));
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(runs, 7);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(hits[i], i == 3 ? 0 : 1);
	wref_release(keep);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_inline_mode)
{
	struct wref_stats start = ct_stats();
	wref_config cfg = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&cfg), 0);
	runs = 0;
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_release(wref_finalize(o, count_run, NULL, 0));
	wref_release(o);
	/* inline: ran on this thread before the release returned */
	ck_assert_int_eq(runs, 1);
	ck_assert(pthread_equal(ran_on, pthread_self()));
	cfg.exec_mode = WREF_EXEC_THREAD;
	ck_assert_int_eq(wref_init(&cfg), 0);
	ct_assert_no_leak(start);
}
END_TEST

/* a finalizer that arms another finalizer and releases things */
static struct obj *second_obj;
static void chain_run(void *arg)
{
	(void)arg;
	runs++;
	wref_release(wref_finalize(second_obj, count_run, NULL, 0));
	wref_release(second_obj); /* runs count_run, queued behind us */
	second_obj = NULL;
}

START_TEST(test_finalizer_user_code)
{
	struct wref_stats start = ct_stats();
	runs = 0;
	second_obj = wref_new(&obj_type, sizeof(struct obj));
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_release(wref_finalize(o, chain_run, NULL, 0));
	wref_release(o);
	/* chain_run may queue count_run after our flush's barrier: a second
	 * flush waits for it */
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(runs, 2);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_enomem)
{
	struct wref_stats start = ct_stats();
	runs = 0;
	struct obj *o = wref_new(&obj_type, sizeof *o);
	for (long n = 0; n < 2; n++) {
		wref__alloc_fail_after(n);
		errno = 0;
		ck_assert_ptr_null(wref_finalize(o, count_run, NULL, 0));
		ck_assert_int_eq(errno, ENOMEM);
	}
	wref__alloc_fail_after(-1);
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(runs, 0);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- at exit: forked children report each run on a pipe ------------------ */

static int report_fd = -1;
static void report_run(void *arg)
{
	dprintf(report_fd, "%s\n", (const char *)arg);
}

/* inside the child: Check's asserts belong to the parent */
#define CHILD_CHECK(c)                                                     \
	do {                                                               \
		if (!(c)) {                                                \
			dprintf(report_fd, "FAIL %s:%d %s\n", __FILE__,     \
				__LINE__, #c);                             \
			_exit(99);                                         \
		}                                                          \
	} while (0)

/* runs @child in a forked child that then exit()s; returns its report */
static void run_child(void (*child)(void), char *out, size_t cap)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		report_fd = p[1];
		child();
		exit(0); /* the at-exit drain runs the armed ATEXIT ones */
	}
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < cap && (r = read(p[0], out + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(p[0]);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "child status %#x, report:\n%s", st, out);
}

static void exit_child(void)
{
	static struct obj *keep[6];
	for (int i = 0; i < 6; i++)
		keep[i] = wref_new(&obj_type, sizeof(struct obj));
	/* armed at exit, handle released: runs once at exit */
	wref_release(wref_finalize(keep[0], report_run, "atexit", 1));
	/* not flagged: never runs at exit */
	wref_release(wref_finalize(keep[1], report_run, "plain", 0));
	/* flagged, but its object dies first: runs once, at death */
	wref_release(wref_finalize(keep[2], report_run, "died", 1));
	wref_release(keep[2]);
	wref_flush();
	/* flagged, then called: runs once, on call */
	wref_finalizer *f = wref_finalize(keep[3], report_run, "called", 1);
	wref_finalizer_call(f);
	wref_release(f);
	/* flag turned off / on later */
	f = wref_finalize(keep[4], report_run, "off", WREF_FIN_ATEXIT);
	wref_finalizer_set_atexit(f, false);
	wref_release(f);
	f = wref_finalize(keep[5], report_run, "on", 0);
	wref_finalizer_set_atexit(f, true);
	wref_finalizer_set_atexit(f, true); /* idempotent */
	wref_release(f);
}

START_TEST(test_atexit)
{
	char buf[256];
	run_child(exit_child, buf, sizeof buf);
	/* order: died (at death), called, then the at-exit ones */
	ck_assert_msg(strstr(buf, "died\ncalled\n") == buf, "got:\n%s", buf);
	const char *rest = buf + strlen("died\ncalled\n");
	ck_assert_msg(!strcmp(rest, "atexit\non\n") ||
		      !strcmp(rest, "on\natexit\n"), "got:\n%s", buf);
}
END_TEST

/* alive at exit; a global so that LeakSanitizer sees it reachable */
struct obj *alive_at_exit;

static void shutdown_child(void)
{
	struct obj *o = wref_new(&obj_type, sizeof(struct obj));
	wref_finalizer *f = wref_finalize(o, report_run, "once", 1);
	wref_shutdown(); /* runs it ... */
	CHILD_CHECK(!wref_finalizer_alive(f));
	wref_shutdown(); /* ... and never twice */
	wref_release(f);
	wref_release(o); /* the death does not run it either */
	wref_flush();
	/* the library restarts lazily: a new at-exit finalizer still runs
	 * (the object stays alive, reachable, until exit) */
	alive_at_exit = wref_new(&obj_type, sizeof(struct obj));
	wref_release(wref_finalize(alive_at_exit, report_run, "again", 1));
}

START_TEST(test_shutdown_runs_once)
{
	char buf[256];
	run_child(shutdown_child, buf, sizeof buf);
	ck_assert_str_eq(buf, "once\nagain\n");
}
END_TEST

/*
 * Issue 16 item 6: an at-exit finalizer created while the at-exit
 * finalizers run (by one of them) runs too, next (CPython's test_atexit).
 * Before the fix the hook took the registry once: "second" never ran, at
 * exit nor on an explicit wref_shutdown() (every run).
 */
struct obj *late_obj[3]; /* globals: reachable for LeakSanitizer */
static void arm_late(void *arg)
{
	int i = (int)(intptr_t)arg;
	static const char *const names[] = { "first", "second", "third" };
	dprintf(report_fd, "%s\n", names[i]);
	if (i + 1 < 3)
		wref_release(wref_finalize(late_obj[i + 1], arm_late,
					   (void *)(intptr_t)(i + 1),
					   WREF_FIN_ATEXIT));
}

static void late_child(void)
{
	for (int i = 0; i < 3; i++)
		late_obj[i] = wref_new(&obj_type, sizeof(struct obj));
	wref_release(wref_finalize(late_obj[0], arm_late, (void *)0,
				   WREF_FIN_ATEXIT));
}

START_TEST(test_atexit_created_at_exit)
{
	char buf[256];
	run_child(late_child, buf, sizeof buf);
	ck_assert_str_eq(buf, "first\nsecond\nthird\n");
}
END_TEST

static void late_shutdown_child(void)
{
	late_child();
	wref_shutdown();
	dprintf(report_fd, "shutdown returned\n");
}

START_TEST(test_atexit_created_at_shutdown)
{
	char buf[256];
	run_child(late_shutdown_child, buf, sizeof buf);
	ck_assert_str_eq(buf, "first\nsecond\nthird\nshutdown returned\n");
}
END_TEST

/*
 * Issue 16 item 14: exit() called from a callback or a destroy that the
 * library runs (on the executor, or inline) still runs the armed at-exit
 * finalizers.  The automatic wref_shutdown at exit saw "in a callback"
 * and returned at once, so "fin" never appeared (every run: the three
 * first cases before bded7f5, all four after it, which made an inline
 * destroy with callbacks queued a callback context); it must neither wait for the executor (the exiting thread
 * may be the executor) nor for inline work that runs only after the
 * caller returned.
 */
struct obj *exit_keep; /* a global: reachable for LeakSanitizer */
static void exit_cb(wref_ref *r, void *arg)
{
	(void)r;
	(void)arg;
	dprintf(report_fd, "cb\n");
	exit(0);
}
static void exiting_destroy(void *p)
{
	(void)p;
	dprintf(report_fd, "destroy\n");
	exit(0);
}
static const wref_type exiting_type = { .name = "exiting",
					.destroy = exiting_destroy };
static void noop_cb(wref_ref *r, void *arg)
{
	(void)r;
	(void)arg;
}
static void destroy_cb(wref_ref *r, void *arg)
{
	(void)r;
	wref_release(arg); /* its destroy runs here, on the executor */
}

/* mode: 0 executor callback, 1 destroy on the executor, 2 inline
 * callback, 3 inline destroy with its own callback queued */
static int exit_mode;
static void exit_in_cb_child(void)
{
	if (exit_mode >= 2) {
		wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
		CHILD_CHECK(wref_init(&inl) == 0);
	}
	exit_keep = wref_new(&obj_type, sizeof(struct obj));
	wref_release(wref_finalize(exit_keep, report_run, "fin",
				   WREF_FIN_ATEXIT));
	void *o;
	switch (exit_mode) {
	case 0:
	case 2:
		o = wref_new(&obj_type, sizeof(struct obj));
		CHILD_CHECK(wref_ref_new(o, exit_cb, NULL));
		break;
	case 1: {
		void *victim = wref_new(&exiting_type, sizeof(struct obj));
		o = wref_new(&obj_type, sizeof(struct obj));
		CHILD_CHECK(wref_ref_new(o, destroy_cb, victim));
		break;
	}
	default:
		o = wref_new(&exiting_type, sizeof(struct obj));
		CHILD_CHECK(wref_ref_new(o, noop_cb, NULL));
		break;
	}
	wref_release(o);
	for (;;) /* the exit() comes from the callback or the destroy */
		pause();
}

static void exit_in_cb_case(int mode, const char *want)
{
	char buf[256];
	exit_mode = mode;
	run_child(exit_in_cb_child, buf, sizeof buf);
	ck_assert_str_eq(buf, want);
}

START_TEST(test_atexit_exit_in_callback)
{
	exit_in_cb_case(0, "cb\nfin\n");
}
END_TEST

START_TEST(test_atexit_exit_in_executor_destroy)
{
	exit_in_cb_case(1, "destroy\nfin\n");
}
END_TEST

START_TEST(test_atexit_exit_in_inline_callback)
{
	exit_in_cb_case(2, "cb\nfin\n");
}
END_TEST

START_TEST(test_atexit_exit_in_inline_destroy)
{
	exit_in_cb_case(3, "destroy\nfin\n");
}
END_TEST

static Suite *finalize_suite(void)
{
	Suite *s = suite_create("finalize");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, test_bad_args);
	tcase_add_test(tc, test_runs_at_death_on_executor);
	tcase_add_test(tc, test_armed_after_handle_release);
	tcase_add_test(tc, test_call);
	tcase_add_test(tc, test_detach_and_peek);
	tcase_add_test(tc, test_many_on_one_object);
	tcase_add_test(tc, test_inline_mode);
	tcase_add_test(tc, test_finalizer_user_code);
	tcase_add_test(tc, test_enomem);
	suite_add_tcase(s, tc);
	tc = tcase_create("atexit");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, test_atexit);
	tcase_add_test(tc, test_shutdown_runs_once);
	tcase_add_test(tc, test_atexit_created_at_exit);
	tcase_add_test(tc, test_atexit_created_at_shutdown);
	tcase_add_test(tc, test_atexit_exit_in_callback);
	tcase_add_test(tc, test_atexit_exit_in_executor_destroy);
	tcase_add_test(tc, test_atexit_exit_in_inline_callback);
	tcase_add_test(tc, test_atexit_exit_in_inline_destroy);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ct_run_suite(finalize_suite());
}
