/*
 * check_method.c - WeakMethod: a weakly bound (object, function) pair.
 */
#include "core_test.h"

struct obj {
	int calls;
	void *last_arg;
};

static _Atomic int destroyed;
static void obj_destroy(void *p)
{
	(void)p;
	destroyed++;
}
static const wref_type obj_type = { .name = "obj", .destroy = obj_destroy };
static const wref_type noweak_type = { .name = "noweak",
				       .flags = WREF_TYPE_NO_WEAK };

static void on_call(void *p, void *arg)
{
	struct obj *o = p;
	o->calls++;
	o->last_arg = arg;
	/* pinned for the call: at least the caller's ref and ours */
	ck_assert_uint_ge(wref_strong_count(o), 2);
}

static void never(void *p, void *arg)
{
	(void)p;
	(void)arg;
	ck_abort_msg("called a dead subscriber");
}

START_TEST(test_bad_args)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	errno = 0;
	ck_assert_ptr_null(wref_method_new(NULL, on_call));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_method_new(o, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(wref_method_call(NULL, NULL), -EINVAL);
	void *nw = wref_new(&noweak_type, 8);
	errno = 0;
	ck_assert_ptr_null(wref_method_new(nw, on_call));
	ck_assert_int_eq(errno, EINVAL);
	wref_release(nw);
	wref_release(o);
}
END_TEST

START_TEST(test_call_live)
{
	struct wref_stats start = ct_stats();
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_method *m = wref_method_new(o, on_call);
	ck_assert_ptr_nonnull(m);
	/* held weakly: not a strong ref, not a weak ref handle either */
	ck_assert_uint_eq(wref_strong_count(o), 1);
	ck_assert_uint_eq(wref_weak_count(o), 0);
	int x;
	ck_assert_int_eq(wref_method_call(m, &x), 0);
	ck_assert_int_eq(wref_method_call(m, NULL), 0);
	ck_assert_int_eq(o->calls, 2);
	ck_assert_ptr_null(o->last_arg);
	ck_assert_uint_eq(wref_strong_count(o), 1);
	wref_release(o);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_call_dead)
{
	struct wref_stats start = ct_stats();
	destroyed = 0;
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_method *m = wref_method_new(o, never);
	wref_release(o); /* the method does not keep it alive */
	ck_assert_int_eq(destroyed, 1);
	ck_assert_int_eq(wref_method_call(m, NULL), -ENOENT);
	ck_assert_int_eq(wref_method_call(m, NULL), -ENOENT); /* forever */
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_method_outlives_nothing)
{
	/* releasing the method first leaves the object untouched */
	struct wref_stats start = ct_stats();
	destroyed = 0;
	struct obj *o = wref_new(&obj_type, sizeof *o);
	wref_method *a = wref_method_new(o, on_call);
	wref_method *b = wref_method_new(o, on_call);
	ck_assert_ptr_ne(a, b); /* methods are never shared */
	wref_release(a);
	ck_assert_int_eq(wref_method_call(b, NULL), 0);
	wref_release(b);
	ck_assert_int_eq(destroyed, 0);
	ck_assert_int_eq(o->calls, 1);
	wref_release(o);
	ck_assert_int_eq(destroyed, 1);
	ct_assert_no_leak(start);
}
END_TEST

/* the function drops the caller's last ref: the pin keeps the object */
struct self_release {
	struct obj *o;
	int seen;
};
static void drop_owner(void *p, void *arg)
{
	struct self_release *sr = arg;
	ck_assert_ptr_eq(p, sr->o);
	wref_release(sr->o);
	ck_assert_int_eq(destroyed, 0); /* still pinned by the call */
	sr->seen = ((struct obj *)p)->calls + 1;
}

START_TEST(test_release_inside_call)
{
	struct wref_stats start = ct_stats();
	destroyed = 0;
	struct self_release sr = { wref_new(&obj_type, sizeof(struct obj)), 0 };
	wref_method *m = wref_method_new(sr.o, drop_owner);
	ck_assert_int_eq(wref_method_call(m, &sr), 0);
	ck_assert_int_eq(sr.seen, 1);
	ck_assert_int_eq(destroyed, 1); /* died when the call unpinned it */
	ck_assert_int_eq(wref_method_call(m, &sr), -ENOENT);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_enomem)
{
	struct wref_stats start = ct_stats();
	struct obj *o = wref_new(&obj_type, sizeof *o);
	/* first the control block, then the method itself */
	for (long n = 0; n < 2; n++) {
		wref__alloc_fail_after(n);
		errno = 0;
		ck_assert_ptr_null(wref_method_new(o, on_call));
		ck_assert_int_eq(errno, ENOMEM);
	}
	wref__alloc_fail_after(-1);
	wref_method *m = wref_method_new(o, on_call);
	ck_assert_int_eq(wref_method_call(m, NULL), 0);
	wref_release(m);
	wref_release(o);
	ct_assert_no_leak(start);
}
END_TEST

/* another object's method released from inside a call */
static wref_method *victim;
static void release_other(void *p, void *arg)
{
	(void)p;
	(void)arg;
	wref_release(victim);
	victim = NULL;
}

START_TEST(test_release_method_inside_call)
{
	struct wref_stats start = ct_stats();
	struct obj *o = wref_new(&obj_type, sizeof *o);
	victim = wref_method_new(o, release_other);
	ck_assert_int_eq(wref_method_call(victim, NULL), 0);
	ck_assert_ptr_null(victim);
	wref_release(o);
	ct_assert_no_leak(start);
}
END_TEST

static Suite *method_suite(void)
{
	Suite *s = suite_create("method");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, test_bad_args);
	tcase_add_test(tc, test_call_live);
	tcase_add_test(tc, test_call_dead);
	tcase_add_test(tc, test_method_outlives_nothing);
	tcase_add_test(tc, test_release_inside_call);
	tcase_add_test(tc, test_enomem);
	tcase_add_test(tc, test_release_method_inside_call);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ct_run_suite(method_suite());
}
