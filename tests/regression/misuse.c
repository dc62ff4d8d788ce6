/*
 * misuse.c - the misuse catalogue: every documented misuse and bad argument
 * with its defined outcome.
 *
 * Each case runs in a forked child of its own (expect() below), with the
 * child's stderr captured, so that an abort or a warning can be checked by
 * its message.  The helper forks itself instead of relying on Check's fork
 * mode, so the suite also works with CK_FORK=no (valgrind).
 *
 * Outcomes (include/wref.h, DESIGN.md §2):
 *  - --enable-debug (WREF_DEBUG): misuse aborts with "libwref: misuse: ..."
 *    naming it;
 *  - release builds: over-release of a dead object whose memory is still
 *    mapped prints a one-time warning and never destroys twice;
 *  - saturation pins the object with a one-time warning, both builds;
 *  - NULL and invalid arguments: EINVAL / -EINVAL / NULL / 0 / no-op.
 *
 * "Still mapped": a dead object's memory is freed at once when it was never
 * weakly referenced, else after an RCU grace period.  Releasing freed memory
 * is a use-after-free no library can define, so the cases below keep the
 * memory mapped the one legitimate way: the object has a control block (a
 * weak ref) and the test holds an RCU read-side section across the misuse.
 */
#include "internal.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- forked-child harness ------------------------------------------------ */

/* a failed expectation inside the child: report on stderr, exit 99 */
#define CHILD_ASSERT(c)                                                    \
	do {                                                               \
		if (!(c)) {                                                \
			fprintf(stderr, "CHILD_FAIL %s:%d: %s\n", __FILE__,  \
				__LINE__, #c);                             \
			fflush(stderr);                                    \
			_exit(99);                                         \
		}                                                          \
	} while (0)

enum want { W_EXIT0, W_ABORT };
static const char *expect_ctx = ""; /* names the case in failures */

/*
 * Runs @fn in a forked child with stderr captured; checks that it exited 0
 * (W_EXIT0) or died of SIGABRT (W_ABORT), that its stderr contains @msg
 * (unless NULL) exactly @times times (0 = at least once), and that it does
 * not contain @not (unless NULL).
 */
static void expect(void (*fn)(void), enum want want, const char *msg,
		   int times, const char *not)
{
	char path[] = "/tmp/wref-misuse-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fd, 2);
		fn();
		fflush(NULL);
		exit(0); /* exit, not _exit: the at-exit drain runs too */
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	char buf[8192];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	if (want == W_EXIT0)
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "child status %#x, stderr:\n%s", st, buf);
	else
		ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
			      "%s: child did not abort (status %#x), stderr:\n%s",
			      expect_ctx, st, buf);
	if (msg) {
		int count = 0;
		for (const char *p = buf; (p = strstr(p, msg)); p++)
			count++;
		if (times)
			ck_assert_msg(count == times, "want %d x \"%s\", got "
				      "%d in:\n%s", times, msg, count, buf);
		else
			ck_assert_msg(count > 0, "want \"%s\" in:\n%s", msg,
				      buf);
	}
	if (not)
		ck_assert_msg(!strstr(buf, not), "unexpected \"%s\" in:\n%s",
			      not, buf);
}

/* ---- a test type ------------------------------------------------------------ */

struct obj {
	int v;
};
static int destroyed; /* per child */
static void obj_destroy(void *p)
{
	(void)p;
	destroyed++;
}
static const wref_type obj_type = { .name = "misuse_obj",
				    .destroy = obj_destroy };
static const wref_type noweak_type = { .name = "noweak",
				       .flags = WREF_TYPE_NO_WEAK };

/* An object whose memory outlives its death for a grace period: a type
 * with hash and equal, marked as a by-value container member (what
 * wref__key_cb does on insert; docs/core.md, "Who frees what"), plus a
 * weak ref *@r.  Every other object's memory is freed at its death, and a
 * call on it after that is a use-after-free that only ASan or valgrind (or
 * an --enable-debug build) can report. */
static uint64_t kept_hash(const void *p)
{
	(void)p;
	return 1;
}
static bool kept_equal(const void *a, const void *b)
{
	return a == b;
}
static const wref_type kept_type = { .name = "misuse_obj",
				     .destroy = obj_destroy,
				     .hash = kept_hash,
				     .equal = kept_equal };
static struct obj *new_kept(wref_ref **r)
{
	struct obj *o = wref_new(&kept_type, sizeof *o);
	*r = o ? wref_ref_new(o, NULL, NULL) : NULL;
	if (*r)
		wref__cb_mem_rcu(wref__cb_get(o));
	return o;
}

/* ---- over-release ------------------------------------------------------------- */

/* release of a dead object (memory still mapped): debug aborts naming it,
 * release warns once and does not destroy twice */
static void c_release_dead(void)
{
	wref_ref *r;
	struct obj *o = new_kept(&r);
	CHILD_ASSERT(o && r);
	wref__rcu_lock(); /* keeps the dead object's memory mapped */
	wref_release(o);
	CHILD_ASSERT(destroyed == 1);
	wref_release(o); /* misuse */
	wref_release(o); /* misuse again: not reported twice */
	CHILD_ASSERT(destroyed == 1);
	CHILD_ASSERT(wref_strong_count(o) == 0);
	wref__rcu_unlock();
	CHILD_ASSERT(wref_ref_get(r) == NULL);
	wref_release(r);
}

START_TEST(release_dead)
{
#ifdef WREF_DEBUG
	expect(c_release_dead, W_ABORT,
	       "libwref: misuse: wref_release(", 1, NULL);
	expect(c_release_dead, W_ABORT, "object is dead", 1, NULL);
#else
	expect(c_release_dead, W_EXIT0, "libwref: misuse: wref_release of an "
	       "object with no strong ref (over-release)", 1, NULL);
#endif
}
END_TEST

/* double release of the shared weak-ref handle (its memory is its
 * control block's, kept by the object's hold) */
static void c_double_release_ref(void)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	CHILD_ASSERT(o && r);
	CHILD_ASSERT(wref_weak_count(o) == 1);
	wref_release(r);
	wref_release(r); /* misuse */
	CHILD_ASSERT(wref_weak_count(o) == 0); /* counted down once only */
	CHILD_ASSERT(destroyed == 0);
	wref_ref *again = wref_ref_new(o, NULL, NULL); /* still works */
	CHILD_ASSERT(again == r && wref_weak_count(o) == 1);
	wref_release(again);
	wref_release(o);
	CHILD_ASSERT(destroyed == 1);
}

START_TEST(double_release_ref)
{
#ifdef WREF_DEBUG
	expect(c_double_release_ref, W_ABORT,
	       "libwref: misuse: wref_release(", 1, "CHILD_FAIL");
#else
	expect(c_double_release_ref, W_EXIT0, "(over-release)", 1,
	       "CHILD_FAIL");
#endif
}
END_TEST

/* a shared ref handed out twice is two strong refs: releasing it twice is
 * correct, a third time is the misuse */
static void c_shared_ref_release_count(void)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_ref *a = wref_ref_new(o, NULL, NULL);
	wref_ref *b = wref_ref_new(o, NULL, NULL);
	CHILD_ASSERT(a && a == b);
	CHILD_ASSERT(wref_strong_count(a) == 2);
	wref_release(a);
	CHILD_ASSERT(wref_ref_get(b) == o);
	wref_release(o);
	wref_release(b);
	CHILD_ASSERT(wref_weak_count(o) == 0);
	wref_release(o);
	CHILD_ASSERT(destroyed == 1);
}

START_TEST(shared_ref_counts)
{
	expect(c_shared_ref_release_count, W_EXIT0, NULL, 0, "libwref:");
}
END_TEST

/* retain of a dead object: the count stays dead, nothing revives it */
static void c_retain_dead(void)
{
	wref_ref *r;
	struct obj *o = new_kept(&r);
	wref__rcu_lock();
	wref_release(o);
	CHILD_ASSERT(wref_retain(o) == o); /* misuse */
	CHILD_ASSERT(wref_ref_get(r) == NULL);
	CHILD_ASSERT(wref_strong_count(o) == 0);
	wref__rcu_unlock();
	CHILD_ASSERT(destroyed == 1);
	wref_release(r);
}

START_TEST(retain_dead)
{
#ifdef WREF_DEBUG
	expect(c_retain_dead, W_ABORT, "libwref: misuse: wref_retain(", 1,
	       NULL);
#else
	expect(c_retain_dead, W_EXIT0, "libwref: misuse: wref_retain of an "
	       "object with no strong ref", 1, "CHILD_FAIL");
#endif
}
END_TEST

/* resurrection: destroy retains its own object.  The object still dies
 * (memory reclaimed after destroy); debug builds abort, release builds
 * warn; destroy never runs twice. */
static int resurrect_destroyed;
static void resurrect_destroy(void *p)
{
	resurrect_destroyed++;
	wref_retain(p);  /* misuse: resurrection */
	wref_release(p); /* gives it back: must not destroy again */
}
static const wref_type resurrect_type = { .name = "resurrect",
					  .destroy = resurrect_destroy };
static void c_resurrect(void)
{
	void *o = wref_new(&resurrect_type, 8);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	wref_release(o);
	CHILD_ASSERT(resurrect_destroyed == 1);
	CHILD_ASSERT(wref_ref_get(r) == NULL);
	wref_release(r);
}

START_TEST(resurrect_in_destroy)
{
#ifdef WREF_DEBUG
	expect(c_resurrect, W_ABORT, "libwref: misuse: wref_retain of an "
	       "object with no strong ref (dead or dying)", 1, NULL);
#else
	expect(c_resurrect, W_EXIT0, "libwref: misuse:", 1, "CHILD_FAIL");
#endif
}
END_TEST

#ifdef WREF_DEBUG
/* pointers not from wref_new(): only debug builds can tell (magic) */
static void c_release_foreign(void)
{
	static uint64_t buf[16]; /* zeroed: no magic */
	wref_release(&buf[8]);
}
static void c_retain_foreign(void)
{
	static uint64_t buf[16];
	wref_retain(&buf[8]);
}
static void c_ref_new_foreign(void)
{
	static uint64_t buf[16];
	wref_ref_new(&buf[8], NULL, NULL);
}
static void c_type_of_foreign(void)
{
	static uint64_t buf[16];
	wref_type_of(&buf[8]);
}

START_TEST(foreign_pointer)
{
	expect(c_release_foreign, W_ABORT, "libwref: misuse: wref_release(",
	       1, NULL);
	expect(c_release_foreign, W_ABORT, "not an object from wref_new()",
	       1, NULL);
	expect(c_retain_foreign, W_ABORT, "libwref: misuse: wref_retain(", 1,
	       NULL);
	expect(c_ref_new_foreign, W_ABORT, "libwref: misuse: wref_ref_new(",
	       1, NULL);
	expect(c_type_of_foreign, W_ABORT, "libwref: misuse: wref_type_of(",
	       1, NULL);
}
END_TEST

/* a weak ref made from a dead (still mapped) object */
static void c_ref_new_dead(void)
{
	wref_ref *r;
	struct obj *o = new_kept(&r);
	wref__rcu_lock();
	wref_release(o);
	wref_ref_new(o, NULL, NULL);
	wref__rcu_unlock();
	wref_release(r);
}

START_TEST(ref_new_dead)
{
	expect(c_ref_new_dead, W_ABORT, "libwref: misuse: wref_ref_new(", 1,
	       NULL);
}
END_TEST
#endif /* WREF_DEBUG */

/* ---- wref_flush / wref_shutdown / wref_init inside a callback ------------- */

static int flush_rc = 1, shutdown_done;
static void cb_flush(wref_ref *r, void *arg)
{
	(void)r;
	(void)arg;
	flush_rc = wref_flush();
	wref_shutdown(); /* documented no-op from a callback */
	shutdown_done = 1;
}

static void flush_in_callback(int mode)
{
	wref_config c = { .exec_mode = mode };
	CHILD_ASSERT(wref_init(&c) == 0);
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_ref *r = wref_ref_new(o, cb_flush, NULL);
	CHILD_ASSERT(r);
	wref_release(o);
	CHILD_ASSERT(wref_flush() == 0);
	CHILD_ASSERT(flush_rc == -EDEADLK);
	CHILD_ASSERT(shutdown_done);
	wref_release(r);
	/* the library still works afterwards */
	o = wref_new(&obj_type, sizeof *o);
	flush_rc = 1;
	r = wref_ref_new(o, cb_flush, NULL);
	wref_release(o);
	CHILD_ASSERT(wref_flush() == 0 && flush_rc == -EDEADLK);
	wref_release(r);
	struct wref_stats s;
	wref_stats(&s);
	CHILD_ASSERT(s.callbacks_run == 2 && s.callbacks_queued == 2);
}
static void c_flush_cb_thread(void)
{
	flush_in_callback(WREF_EXEC_THREAD);
}
static void c_flush_cb_inline(void)
{
	flush_in_callback(WREF_EXEC_INLINE);
}

START_TEST(flush_inside_callback)
{
	expect(c_flush_cb_thread, W_EXIT0, NULL, 0, "libwref:");
	expect(c_flush_cb_inline, W_EXIT0, NULL, 0, "libwref:");
}
END_TEST

/* wref_init while callbacks are pending under the other mode: -EBUSY */
static _Atomic int gate;
static void cb_block(wref_ref *r, void *arg)
{
	(void)r;
	(void)arg;
	while (!atomic_load(&gate))
		usleep(100);
}
static void cb_nop(wref_ref *r, void *arg)
{
	(void)r;
	(void)arg;
}
static void c_init_busy(void)
{
	struct obj *a = wref_new(&obj_type, sizeof *a);
	struct obj *b = wref_new(&obj_type, sizeof *b);
	wref_ref *ra = wref_ref_new(a, cb_block, NULL);
	wref_ref *rb = wref_ref_new(b, cb_nop, NULL);
	wref_release(a);
	/* wait until the executor holds cb_block (its batch is empty) */
	struct wref_stats s;
	do {
		usleep(100);
		wref_stats(&s);
	} while (s.callbacks_queued != 1);
	usleep(20000);
	wref_release(b); /* queued behind the blocked one */
	wref_config c = { .exec_mode = WREF_EXEC_INLINE };
	CHILD_ASSERT(wref_init(&c) == -EBUSY);
	atomic_store(&gate, 1);
	CHILD_ASSERT(wref_flush() == 0);
	CHILD_ASSERT(wref_init(&c) == 0);
	c.exec_mode = 7;
	CHILD_ASSERT(wref_init(&c) == -EINVAL);
	c.exec_mode = -1;
	CHILD_ASSERT(wref_init(&c) == -EINVAL);
	CHILD_ASSERT(wref_init(NULL) == 0); /* back to the default */
	wref_release(ra);
	wref_release(rb);
}

START_TEST(init_busy_invalid)
{
	expect(c_init_busy, W_EXIT0, NULL, 0, "CHILD_FAIL");
}
END_TEST

/* ---- saturation ----------------------------------------------------------------- */

static void c_saturate(void)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	atomic_store(wref__test_cnt(o), WREF_SAT - 1);
	CHILD_ASSERT(wref_retain(o) == o); /* reaches 2^62 */
	CHILD_ASSERT(wref_retain(o) == o); /* saturates: pinned + warning */
	uint64_t c = atomic_load(wref__test_cnt(o));
	CHILD_ASSERT(c >= WREF_SAT && c < WREF_DEAD);
	for (int i = 0; i < 1000; i++)
		wref_release(o);
	CHILD_ASSERT(destroyed == 0);
	void *g = wref_ref_get(r); /* upgrade of a pinned object works */
	CHILD_ASSERT(g == o);
	wref_release(g);
	/* a second object saturating is not reported again */
	struct obj *p = wref_new(&obj_type, sizeof *p);
	atomic_store(&wref__hdr(p)->word, WREF_SAT); /* inline, pinned */
	wref_retain(p);
	CHILD_ASSERT(wref_strong_count(p) >= WREF_SAT);
	/* saturation through upgrades (wref__tryget_slow) */
	wref_ref *rp = wref_ref_new(p, NULL, NULL);
	atomic_store(wref__test_cnt(p), WREF_SAT - 1);
	for (int i = 0; i < 3; i++)
		CHILD_ASSERT(wref_ref_get(rp) == p);
	CHILD_ASSERT(wref_strong_count(p) >= WREF_SAT);
	/* clean up by hand so leak checkers stay quiet: test-only */
	atomic_store(wref__test_cnt(o), 1);
	atomic_store(wref__test_cnt(p), 1);
	wref_release(o);
	wref_release(p);
	CHILD_ASSERT(destroyed == 2);
	wref_release(r);
	wref_release(rp);
}

/* the increment that reaches exactly 2^62 saturates and warns at once
 * (8a36efc pinned the object there silently; the warning came only with
 * the next increment) */
static void c_saturate_exact_retain(void)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	/* inline count 2^61 - 1: the next retain reaches the inline zone */
	atomic_store(&wref__hdr(o)->word, WREF_SAT - WREF_INL(1));
	CHILD_ASSERT(wref_retain(o) == o); /* reaches the zone: pinned */
	CHILD_ASSERT(wref_strong_count(o) >= WREF_SAT);
	fflush(stderr);
	_exit(0); /* no further increment */
}
static void c_saturate_exact_upgrade(void)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	atomic_store(wref__test_cnt(o), WREF_SAT - 1);
	CHILD_ASSERT(wref_ref_get(r) == o); /* reaches 2^62: pinned */
	CHILD_ASSERT(wref_strong_count(o) >= WREF_SAT);
	fflush(stderr);
	_exit(0);
}

static void c_saturate_exact_retain_block(void)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_ref *r = wref_ref_new(o, NULL, NULL); /* the count moves out */
	CHILD_ASSERT(r);
	atomic_store(wref__test_cnt(o), WREF_SAT - 1);
	CHILD_ASSERT(wref_retain(o) == o); /* reaches 2^62: pinned */
	CHILD_ASSERT(wref_strong_count(o) >= WREF_SAT);
	fflush(stderr);
	_exit(0);
}

START_TEST(saturation_warns_at_once)
{
	expect(c_saturate_exact_retain_block, W_EXIT0,
	       "saturated; the object is pinned forever", 1, "CHILD_FAIL");
	expect(c_saturate_exact_retain, W_EXIT0,
	       "saturated; the object is pinned forever", 1, "CHILD_FAIL");
	expect(c_saturate_exact_upgrade, W_EXIT0,
	       "saturated; the object is pinned forever", 1, "CHILD_FAIL");
}
END_TEST

#ifndef WREF_DEBUG
/* a count of 0 is no object of ours: named as such, not as over-release
 * (release builds; debug builds abort on the magic, foreign_pointer) */
static void c_release_zero(void)
{
	static uint64_t buf[16]; /* zeroed: count 0 */
	wref_release(&buf[8]);
	wref_retain(&buf[8]);
}

START_TEST(release_count_zero)
{
	expect(c_release_zero, W_EXIT0, "libwref: misuse: wref_release of a "
	       "pointer whose strong count is 0: not an object from "
	       "wref_new()", 1, "over-release");
}
END_TEST
#endif

START_TEST(retain_past_saturation)
{
	expect(c_saturate, W_EXIT0, "saturated; the object is pinned forever",
	       1, "CHILD_FAIL");
	expect(c_saturate, W_EXIT0, "misuse_obj", 1, "libwref: misuse");
}
END_TEST

#ifdef WREF_DEBUG
/* --enable-debug keeps a dead object's memory (magic DEAD) in a quarantine
 * of the last 4096 frees, so the plain misuses below abort naming the call
 * with no trick keeping the memory mapped.  (A release build frees at
 * once; wref.h says these are then undefined.) */
static void c_plain_double_release(void)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_release(o);
	wref_release(o); /* misuse */
}
static void c_plain_double_release_ref(void)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	wref_release(r);
	wref_release(r); /* misuse */
}
static void c_get_released_ref(void)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	wref_release(r);
	(void)wref_ref_get(r); /* misuse */
}
static void c_plain_double_release_map(void)
{
	wref_valmap *m = wref_valmap_new(NULL);
	wref_release(m);
	wref_release(m); /* misuse */
}

START_TEST(plain_double_release_debug)
{
	expect(c_plain_double_release, W_ABORT, "libwref: misuse: "
	       "wref_release(", 1, NULL);
	expect(c_plain_double_release, W_ABORT, "object is dead (released "
	       "too often)", 1, NULL);
	expect(c_plain_double_release_ref, W_ABORT, "object is dead", 1,
	       NULL);
	expect(c_get_released_ref, W_ABORT, "libwref: misuse: wref_ref_get(",
	       1, NULL);
	expect(c_plain_double_release_map, W_ABORT, "object is dead", 1,
	       NULL);
}
END_TEST
#endif

/* ---- NULL and invalid arguments: core ------------------------------------------ */

static int fn_ret7(void *obj, void *arg)
{
	(void)obj;
	(void)arg;
	return 7;
}

START_TEST(null_args_core)
{
	errno = 0;
	ck_assert_ptr_null(wref_new(NULL, 8));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_new(&obj_type, SIZE_MAX));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(wref_new(&obj_type, SIZE_MAX - 8));
	ck_assert_int_eq(errno, ENOMEM);
	void *z = wref_new(&obj_type, 0); /* zero-size payload is valid */
	ck_assert_ptr_nonnull(z);
	wref_release(z);

	ck_assert_ptr_null(wref_retain(NULL));
	wref_release(NULL);
	ck_assert_ptr_null(wref_type_of(NULL));
	ck_assert_uint_eq(wref_strong_count(NULL), 0);
	ck_assert_uint_eq(wref_weak_count(NULL), 0);
	ck_assert_uint_eq(wref_weak_refs(NULL, NULL, 0), 0);

	errno = 0;
	ck_assert_ptr_null(wref_ref_new(NULL, NULL, NULL));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_ref_new(NULL, cb_nop, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(wref_ref_get(NULL));
	ck_assert(!wref_ref_alive(NULL));
	ck_assert_int_eq(wref_ref_call(NULL, fn_ret7, NULL), -EINVAL);
	ck_assert_uint_eq(wref_ref_hash(NULL), 0);
	ck_assert(wref_ref_equal(NULL, NULL));

	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	ck_assert_int_eq(wref_ref_call(r, NULL, NULL), -EINVAL);
	ck_assert_int_eq(wref_ref_call(r, fn_ret7, NULL), 7);
	ck_assert(!wref_ref_equal(r, NULL));
	ck_assert(!wref_ref_equal(NULL, r));
	/* out NULL with a non-zero cap: nothing stored, 0 */
	ck_assert_uint_eq(wref_weak_refs(o, NULL, 4), 0);
	ck_assert_uint_eq(wref_weak_refs(o, NULL, 0), 1);
	wref_release(o);
	ck_assert_int_eq(wref_ref_call(r, fn_ret7, NULL), -ENOENT);
	ck_assert_ptr_null(wref_ref_get(r));
	ck_assert(!wref_ref_alive(r));
	wref_release(r);

	/* NO_WEAK types refuse weak refs with EINVAL */
	void *nw = wref_new(&noweak_type, 16);
	errno = 0;
	ck_assert_ptr_null(wref_ref_new(nw, NULL, NULL));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_ref_new(nw, cb_nop, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(wref_weak_count(nw), 0);
	ck_assert_uint_eq(wref_weak_refs(nw, NULL, 0), 0);
	ck_assert_ptr_eq(wref_type_of(nw), &noweak_type);
	wref_release(nw);

	wref_stats(NULL); /* no-op */
	ck_assert_int_eq(wref_flush(), 0);
	wref_config bad = { .exec_mode = 42 };
	ck_assert_int_eq(wref_init(&bad), -EINVAL);
}
END_TEST


/* ---- NULL and invalid arguments: method, finalize, signal -------------------- */

static void mfn(void *obj, void *arg)
{
	(void)obj;
	(void)arg;
}
static void ffn(void *arg)
{
	(void)arg;
}

START_TEST(null_args_extras)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	void *nw = wref_new(&noweak_type, 16);

	errno = 0;
	ck_assert_ptr_null(wref_method_new(NULL, mfn));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_method_new(o, NULL));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_method_new(nw, mfn));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(wref_method_call(NULL, NULL), -EINVAL);

	errno = 0;
	ck_assert_ptr_null(wref_finalize(NULL, ffn, NULL, 0));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_finalize(o, NULL, NULL, 0));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_finalize(o, ffn, NULL, 0x80));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_finalize(nw, ffn, NULL, 0));
	ck_assert_int_eq(errno, EINVAL);
	void *arg = &arg;
	ck_assert(!wref_finalizer_alive(NULL));
	ck_assert(!wref_finalizer_call(NULL));
	ck_assert(!wref_finalizer_detach(NULL, &arg));
	ck_assert(!wref_finalizer_peek(NULL, &arg));
	ck_assert_ptr_eq(arg, &arg); /* untouched */
	wref_finalizer_set_atexit(NULL, true);
	/* detach/peek with a NULL out pointer are fine */
	wref_finalizer *f = wref_finalize(o, ffn, NULL, 0);
	ck_assert(wref_finalizer_peek(f, NULL));
	ck_assert(wref_finalizer_detach(f, NULL));
	ck_assert(!wref_finalizer_detach(f, NULL));
	ck_assert(!wref_finalizer_call(f));
	wref_release(f);

	wref_signal *s = wref_signal_new();
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(wref_signal_connect(NULL, o, mfn), -EINVAL);
	ck_assert_int_eq(wref_signal_connect(s, NULL, mfn), -EINVAL);
	ck_assert_int_eq(wref_signal_connect(s, o, NULL), -EINVAL);
	ck_assert_int_eq(wref_signal_connect(s, nw, mfn), -EINVAL);
	ck_assert_int_eq(wref_signal_disconnect(NULL, o, mfn), -EINVAL);
	ck_assert_int_eq(wref_signal_disconnect(s, NULL, mfn), -EINVAL);
	ck_assert_int_eq(wref_signal_disconnect(s, o, NULL), -EINVAL);
	ck_assert_int_eq(wref_signal_disconnect(s, nw, mfn), -EINVAL);
	ck_assert_int_eq(wref_signal_disconnect(s, o, mfn), -ENOENT);
	ck_assert_uint_eq(wref_signal_emit(NULL, NULL), 0);
	ck_assert_uint_eq(wref_signal_len(NULL), 0);
	ck_assert_uint_eq(wref_signal_len(s), 0);
	wref_release(s);

	wref_release(nw);
	wref_release(o);
}
END_TEST

/* ---- NULL and invalid arguments: containers ------------------------------------ */

static void *mk(const void *k, size_t n, void *a)
{
	(void)k;
	(void)n;
	(void)a;
	return wref_new(&obj_type, sizeof(struct obj));
}
static int vwalk(const void *k, size_t n, void *o, void *a)
{
	(void)k;
	(void)n;
	(void)o;
	(void)a;
	return 0;
}
static int kwalk(void *k, void *v, void *a)
{
	(void)k;
	(void)v;
	(void)a;
	return 0;
}
static int swalk(void *o, void *a)
{
	(void)o;
	(void)a;
	return 0;
}

START_TEST(null_args_containers)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	void *nw = wref_new(&noweak_type, 16);
	const char key[] = "k";

	/* valmap */
	wref_valmap *m = wref_valmap_new(NULL);
	ck_assert_ptr_nonnull(m);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get(NULL, key, 1));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get(m, NULL, 1));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get(m, NULL, 0)); /* valid: empty key */
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(wref_valmap_set(NULL, key, 1, o), -EINVAL);
	ck_assert_int_eq(wref_valmap_set(m, NULL, 1, o), -EINVAL);
	ck_assert_int_eq(wref_valmap_set(m, key, 1, NULL), -EINVAL);
	ck_assert_int_eq(wref_valmap_set(m, key, 1, nw), -EINVAL);
	ck_assert_int_eq(wref_valmap_set(m, NULL, 0, o), 0); /* empty key */
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get_or_create(NULL, key, 1, mk, NULL));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get_or_create(m, key, 1, NULL, NULL));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get_or_create(m, NULL, 1, mk, NULL));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_pop(NULL, key, 1));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_pop(m, NULL, 1));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(wref_valmap_del(NULL, key, 1), -EINVAL);
	ck_assert_int_eq(wref_valmap_del(m, NULL, 1), -EINVAL);
	ck_assert_int_eq(wref_valmap_del(m, key, 1), -ENOENT);
	ck_assert_uint_eq(wref_valmap_len(NULL), 0);
	ck_assert_int_eq(wref_valmap_foreach(NULL, vwalk, NULL), -EINVAL);
	ck_assert_int_eq(wref_valmap_foreach(m, NULL, NULL), -EINVAL);
	wref_valmap_clear(NULL);
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	wref_release(m);

	/* keymap */
	wref_keymap *k = wref_keymap_new(NULL);
	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(wref_keymap_set(NULL, o, o), -EINVAL);
	ck_assert_int_eq(wref_keymap_set(k, NULL, o), -EINVAL);
	ck_assert_int_eq(wref_keymap_set(k, o, NULL), -EINVAL);
	ck_assert_int_eq(wref_keymap_set(k, nw, o), -EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_get(NULL, o));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_get(k, NULL));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_get(k, o));
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_pop(NULL, o));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_pop(k, o));
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(wref_keymap_del(NULL, o), -EINVAL);
	ck_assert_int_eq(wref_keymap_del(k, NULL), -EINVAL);
	ck_assert_int_eq(wref_keymap_del(k, o), -ENOENT);
	ck_assert_uint_eq(wref_keymap_len(NULL), 0);
	ck_assert_int_eq(wref_keymap_foreach(NULL, kwalk, NULL), -EINVAL);
	ck_assert_int_eq(wref_keymap_foreach(k, NULL, NULL), -EINVAL);
	wref_release(k);

	/* set */
	wref_set *s = wref_set_new(NULL);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(wref_set_add(NULL, o), -EINVAL);
	ck_assert_int_eq(wref_set_add(s, NULL), -EINVAL);
	ck_assert_int_eq(wref_set_add(s, nw), -EINVAL);
	ck_assert_int_eq(wref_set_discard(NULL, o), -EINVAL);
	ck_assert_int_eq(wref_set_discard(s, NULL), -EINVAL);
	ck_assert_int_eq(wref_set_discard(s, o), -ENOENT);
	ck_assert(!wref_set_contains(NULL, o));
	ck_assert(!wref_set_contains(s, NULL));
	ck_assert_uint_eq(wref_set_len(NULL), 0);
	ck_assert_int_eq(wref_set_foreach(NULL, swalk, NULL), -EINVAL);
	ck_assert_int_eq(wref_set_foreach(s, NULL, NULL), -EINVAL);
	wref_release(s);

	/* WREF_MAP_BY_VALUE with a key type lacking hash/equal: EINVAL
	 * (DESIGN rule 15) */
	wref_map_options bv = { .flags = WREF_MAP_BY_VALUE };
	k = wref_keymap_new(&bv);
	s = wref_set_new(&bv);
	ck_assert_ptr_nonnull(k);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(wref_keymap_set(k, o, o), -EINVAL);
	ck_assert_int_eq(wref_set_add(s, o), -EINVAL);
	wref_release(k);
	wref_release(s);
	/* unknown option flags */
	wref_map_options bad = { .flags = 0x80 };
	errno = 0;
	ck_assert_ptr_null(wref_valmap_new(&bad));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_new(&bad));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_set_new(&bad));
	ck_assert_int_eq(errno, EINVAL);

	wref_release(nw);
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
}
END_TEST

#ifdef WREF_DEBUG
/* use of a handle after its release (memory kept mapped as above): debug
 * builds abort naming the call */
#define USE_AFTER_RELEASE(name, mkexpr, useexpr)                           \
	static void c_uar_##name(void)                                     \
	{                                                                  \
		void *h = (mkexpr);                                        \
		CHILD_ASSERT(h);                                           \
		wref_ref *w = wref_ref_new(h, NULL, NULL);                 \
		wref__rcu_lock();                                          \
		wref_release(h);                                           \
		(void)(useexpr);                                           \
		wref__rcu_unlock();                                        \
		wref_release(w);                                           \
	}
static struct obj *uar_o;
USE_AFTER_RELEASE(valmap, wref_valmap_new(NULL), wref_valmap_len(h))
USE_AFTER_RELEASE(valmap_get, wref_valmap_new(NULL),
		  wref_valmap_get(h, "k", 1))
USE_AFTER_RELEASE(keymap, wref_keymap_new(NULL), wref_keymap_len(h))
USE_AFTER_RELEASE(set, wref_set_new(NULL), wref_set_contains(h, uar_o))
USE_AFTER_RELEASE(signal, wref_signal_new(), wref_signal_emit(h, NULL))
USE_AFTER_RELEASE(ref, wref_ref_new(uar_o, NULL, NULL), wref_ref_get(h))
USE_AFTER_RELEASE(method, wref_method_new(uar_o, mfn),
		  wref_method_call(h, NULL))

static void (*const uar_cases[])(void) = {
	c_uar_valmap, c_uar_valmap_get, c_uar_keymap, c_uar_set,
	c_uar_signal, c_uar_ref, c_uar_method,
};
static const char *const uar_names[] = {
	"valmap_len", "valmap_get", "keymap_len", "set_contains",
	"signal_emit", "ref_get", "method_call",
};

START_TEST(use_after_release)
{
	uar_o = wref_new(&obj_type, sizeof *uar_o);
	expect_ctx = uar_names[_i]; /* printed before "child" */
	expect(uar_cases[_i], W_ABORT, "libwref: misuse:", 0, NULL);
	wref_release(uar_o);
}
END_TEST
#endif

/* ---- suite ------------------------------------------------------------------------ */

static Suite *misuse_suite(void)
{
	Suite *s = suite_create("misuse");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, release_dead);
	tcase_add_test(tc, double_release_ref);
	tcase_add_test(tc, shared_ref_counts);
	tcase_add_test(tc, retain_dead);
	tcase_add_test(tc, resurrect_in_destroy);
	tcase_add_test(tc, saturation_warns_at_once);
#ifdef WREF_DEBUG
	tcase_add_test(tc, plain_double_release_debug);
#endif
#ifndef WREF_DEBUG
	tcase_add_test(tc, release_count_zero);
#endif
#ifdef WREF_DEBUG
	tcase_add_test(tc, foreign_pointer);
	tcase_add_test(tc, ref_new_dead);
#endif
	tcase_add_test(tc, flush_inside_callback);
	tcase_add_test(tc, init_busy_invalid);
	tcase_add_test(tc, retain_past_saturation);
	tcase_add_test(tc, null_args_core);
	tcase_add_test(tc, null_args_extras);
	tcase_add_test(tc, null_args_containers);
#ifdef WREF_DEBUG
	tcase_add_loop_test(tc, use_after_release, 0,
			    sizeof uar_cases / sizeof uar_cases[0]);
#endif
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(misuse_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
