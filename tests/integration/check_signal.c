/*
 * check_signal.c - observer / event bus with weak subscribers: duplicates,
 * disconnect, dead subscribers leaving at once, connection order, and
 * subscribers that modify the signal (or release it) from inside a call.
 */
#include "core_test.h"

struct obj {
	int id;
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

static struct obj *mk(int id)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	o->id = id;
	return o;
}

/* the order subscribers were called in */
static int order[256];
static int norder;

static void on_a(void *p, void *arg)
{
	struct obj *o = p;
	o->calls++;
	o->last_arg = arg;
	if (norder < 256)
		order[norder++] = o->id;
}

static void on_b(void *p, void *arg)
{
	on_a(p, arg);
}

START_TEST(test_bad_args)
{
	wref_signal *s = wref_signal_new();
	ck_assert_ptr_nonnull(s);
	struct obj *o = mk(1);
	ck_assert_int_eq(wref_signal_connect(NULL, o, on_a), -EINVAL);
	ck_assert_int_eq(wref_signal_connect(s, NULL, on_a), -EINVAL);
	ck_assert_int_eq(wref_signal_connect(s, o, NULL), -EINVAL);
	ck_assert_int_eq(wref_signal_disconnect(NULL, o, on_a), -EINVAL);
	ck_assert_int_eq(wref_signal_disconnect(s, NULL, on_a), -EINVAL);
	ck_assert_int_eq(wref_signal_disconnect(s, o, NULL), -EINVAL);
	void *nw = wref_new(&noweak_type, 8);
	ck_assert_int_eq(wref_signal_connect(s, nw, on_a), -EINVAL);
	ck_assert_int_eq(wref_signal_disconnect(s, nw, on_a), -EINVAL);
	wref_release(nw);
	/* never connected: an object without a block, then with one */
	ck_assert_int_eq(wref_signal_disconnect(s, o, on_a), -ENOENT);
	ck_assert_int_eq(wref_signal_connect(s, o, on_a), 0);
	ck_assert_int_eq(wref_signal_disconnect(s, o, on_b), -ENOENT);
	ck_assert_uint_eq(wref_signal_emit(NULL, NULL), 0);
	ck_assert_uint_eq(wref_signal_len(NULL), 0);
	wref_release(o);
	wref_release(s);
}
END_TEST

START_TEST(test_connect_emit_order)
{
	struct wref_stats start = ct_stats();
	wref_signal *s = wref_signal_new();
	struct obj *o[40];
	norder = 0;
	/* more than emit's on-stack snapshot holds */
	for (int i = 0; i < 40; i++) {
		o[i] = mk(i);
		ck_assert_int_eq(wref_signal_connect(s, o[i], on_a), 0);
	}
	ck_assert_int_eq(wref_signal_connect(s, o[0], on_a), -EEXIST);
	ck_assert_int_eq(wref_signal_connect(s, o[7], on_a), -EEXIST);
	ck_assert_uint_eq(wref_signal_len(s), 40);
	/* held weakly: no strong ref, no weak ref handle */
	ck_assert_uint_eq(wref_strong_count(o[3]), 1);
	ck_assert_uint_eq(wref_weak_count(o[3]), 0);
	int x;
	ck_assert_uint_eq(wref_signal_emit(s, &x), 40);
	ck_assert_int_eq(norder, 40);
	for (int i = 0; i < 40; i++) {
		ck_assert_int_eq(order[i], i); /* connection order */
		ck_assert_int_eq(o[i]->calls, 1);
		ck_assert_ptr_eq(o[i]->last_arg, &x);
		ck_assert_uint_eq(wref_strong_count(o[i]), 1);
	}
	/* same object, another function: a second subscription */
	ck_assert_int_eq(wref_signal_connect(s, o[0], on_b), 0);
	ck_assert_uint_eq(wref_signal_len(s), 41);
	ck_assert_uint_eq(wref_signal_emit(s, NULL), 41);
	ck_assert_int_eq(o[0]->calls, 3);
	for (int i = 0; i < 40; i++)
		wref_release(o[i]);
	ck_assert_uint_eq(wref_signal_len(s), 0);
	wref_release(s);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_dead_subscriber_leaves)
{
	struct wref_stats start = ct_stats();
	wref_signal *s = wref_signal_new();
	struct obj *a = mk(1), *b = mk(2);
	ck_assert_int_eq(wref_signal_connect(s, a, on_a), 0);
	ck_assert_int_eq(wref_signal_connect(s, b, on_a), 0);
	ck_assert_uint_eq(wref_signal_len(s), 2);
	destroyed = 0;
	wref_release(a); /* no unsubscribe */
	ck_assert_int_eq(destroyed, 1);
	/* gone at once, before any flush */
	ck_assert_uint_eq(wref_signal_len(s), 1);
	norder = 0;
	ck_assert_uint_eq(wref_signal_emit(s, NULL), 1);
	ck_assert_int_eq(norder, 1);
	ck_assert_int_eq(order[0], 2);
	wref_release(b);
	ck_assert_uint_eq(wref_signal_len(s), 0);
	ck_assert_uint_eq(wref_signal_emit(s, NULL), 0);
	wref_release(s);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_disconnect)
{
	struct wref_stats start = ct_stats();
	wref_signal *s = wref_signal_new();
	struct obj *a = mk(1);
	ck_assert_int_eq(wref_signal_connect(s, a, on_a), 0);
	ck_assert_int_eq(wref_signal_connect(s, a, on_b), 0);
	ck_assert_int_eq(wref_signal_disconnect(s, a, on_a), 0);
	ck_assert_int_eq(wref_signal_disconnect(s, a, on_a), -ENOENT);
	ck_assert_uint_eq(wref_signal_len(s), 1);
	ck_assert_uint_eq(wref_signal_emit(s, NULL), 1);
	ck_assert_int_eq(a->calls, 1);
	/* reconnect after disconnect */
	ck_assert_int_eq(wref_signal_connect(s, a, on_a), 0);
	ck_assert_uint_eq(wref_signal_emit(s, NULL), 2);
	ck_assert_int_eq(wref_signal_disconnect(s, a, on_a), 0);
	ck_assert_int_eq(wref_signal_disconnect(s, a, on_b), 0);
	ck_assert_uint_eq(wref_signal_len(s), 0);
	ck_assert_uint_eq(wref_signal_emit(s, NULL), 0);
	wref_release(a);
	wref_release(s);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- subscribers that act on the signal from inside a call -------------- */

struct ctx {
	wref_signal *s;
	struct obj *other;  /* to connect / disconnect / release */
	struct obj *self;   /* the caller's own ref, dropped in the call */
	int calls;
};

static void disconnect_self(void *p, void *arg)
{
	struct ctx *c = arg;
	c->calls++;
	ck_assert_int_eq(wref_signal_disconnect(c->s, p, disconnect_self), 0);
}

static void connect_other(void *p, void *arg)
{
	struct ctx *c = arg;
	(void)p;
	c->calls++;
	wref_signal_connect(c->s, c->other, on_a);
}

static void release_self(void *p, void *arg)
{
	struct ctx *c = arg;
	c->calls++;
	ck_assert_ptr_eq(p, c->self);
	wref_release(c->self); /* the last ref but ours: pinned by emit */
	ck_assert_int_eq(destroyed, 0);
	ck_assert_int_eq(((struct obj *)p)->id, 7);
}

static void release_signal(void *p, void *arg)
{
	struct ctx *c = arg;
	(void)p;
	c->calls++;
	wref_release(c->s); /* the last ref to the signal */
	c->s = NULL;
}

static void emit_nested(void *p, void *arg)
{
	struct ctx *c = arg;
	(void)p;
	if (c->calls++ == 0)
		wref_signal_emit(c->s, c);
}

START_TEST(test_modify_from_call)
{
	struct wref_stats start = ct_stats();
	wref_signal *s = wref_signal_new();
	struct ctx c = { .s = s, .other = mk(2) };
	struct obj *a = mk(1);

	ck_assert_int_eq(wref_signal_connect(s, a, disconnect_self), 0);
	ck_assert_uint_eq(wref_signal_emit(s, &c), 1);
	ck_assert_uint_eq(wref_signal_len(s), 0);
	ck_assert_uint_eq(wref_signal_emit(s, &c), 0);
	ck_assert_int_eq(c.calls, 1);

	/* connected during an emit: not called by that emit */
	ck_assert_int_eq(wref_signal_connect(s, a, connect_other), 0);
	ck_assert_uint_eq(wref_signal_emit(s, &c), 1);
	ck_assert_int_eq(c.other->calls, 0);
	ck_assert_uint_eq(wref_signal_len(s), 2);
	ck_assert_uint_eq(wref_signal_emit(s, &c), 2);
	ck_assert_int_eq(c.other->calls, 1);
	ck_assert_int_eq(wref_signal_disconnect(s, a, connect_other), 0);

	/* nested emit */
	c.calls = 0;
	ck_assert_int_eq(wref_signal_connect(s, a, emit_nested), 0);
	ck_assert_uint_eq(wref_signal_emit(s, &c), 2);
	ck_assert_int_eq(c.calls, 2);
	ck_assert_int_eq(c.other->calls, 3);
	ck_assert_int_eq(wref_signal_disconnect(s, a, emit_nested), 0);

	/* the subscriber drops the last outside ref to itself */
	destroyed = 0;
	c.self = mk(7);
	ck_assert_int_eq(wref_signal_connect(s, c.self, release_self), 0);
	c.calls = 0;
	ck_assert_uint_eq(wref_signal_emit(s, &c), 2);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(destroyed, 1); /* died when emit unpinned it */
	ck_assert_uint_eq(wref_signal_len(s), 1);

	/* the first subscriber releases the signal; the rest still run */
	struct obj *z = mk(3);
	ck_assert_int_eq(wref_signal_disconnect(s, c.other, on_a), 0);
	ck_assert_int_eq(wref_signal_connect(s, a, release_signal), 0);
	ck_assert_int_eq(wref_signal_connect(s, z, on_a), 0);
	c.calls = 0;
	ck_assert_uint_eq(wref_signal_emit(s, &c), 2);
	ck_assert_ptr_null(c.s);
	ck_assert_int_eq(z->calls, 1);

	wref_release(z);
	wref_release(a);
	wref_release(c.other);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_lifetimes)
{
	struct wref_stats start = ct_stats();
	/* the signal dies first, its subscribers later */
	wref_signal *s = wref_signal_new();
	struct obj *a = mk(1), *b = mk(2);
	ck_assert_int_eq(wref_signal_connect(s, a, on_a), 0);
	ck_assert_int_eq(wref_signal_connect(s, b, on_a), 0);
	ck_assert_int_eq(wref_signal_connect(s, b, on_b), 0);
	wref_release(s);
	wref_release(a);
	wref_release(b);
	/* subscribers in several signals at once */
	wref_signal *s1 = wref_signal_new(), *s2 = wref_signal_new();
	a = mk(1);
	ck_assert_int_eq(wref_signal_connect(s1, a, on_a), 0);
	ck_assert_int_eq(wref_signal_connect(s2, a, on_a), 0);
	ck_assert_uint_eq(wref_signal_emit(s1, NULL), 1);
	ck_assert_uint_eq(wref_signal_emit(s2, NULL), 1);
	wref_release(a);
	ck_assert_uint_eq(wref_signal_len(s1), 0);
	ck_assert_uint_eq(wref_signal_len(s2), 0);
	wref_release(s1);
	wref_release(s2);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_enomem)
{
	struct wref_stats start = ct_stats();
	wref__alloc_fail_after(0);
	errno = 0;
	ck_assert_ptr_null(wref_signal_new());
	ck_assert_int_eq(errno, ENOMEM);
	wref_signal *s = wref_signal_new();
	struct obj *a = mk(1);
	/* the control block, then the subscription */
	for (long n = 0; n < 2; n++) {
		wref__alloc_fail_after(n);
		ck_assert_int_eq(wref_signal_connect(s, a, on_a), -ENOMEM);
		ck_assert_uint_eq(wref_signal_len(s), 0);
	}
	wref__alloc_fail_after(-1);
	ck_assert_int_eq(wref_signal_connect(s, a, on_a), 0);
	ck_assert_uint_eq(wref_signal_emit(s, NULL), 1);
	wref_release(a);
	wref_release(s);
	ct_assert_no_leak(start);
}
END_TEST

/* a reconnected subscriber goes last; large snapshots keep the order */
START_TEST(test_order_large)
{
	struct wref_stats start = ct_stats();
	enum { N = 300 };
	wref_signal *s = wref_signal_new();
	static struct obj *o[N];
	static int expect[N];
	int ne = 0;
	for (int i = 0; i < N; i++) {
		o[i] = mk(i);
		ck_assert_int_eq(wref_signal_connect(s, o[i], on_a), 0);
	}
	/* every third one reconnects: it moves to the end */
	for (int i = 0; i < N; i++)
		if (i % 3 != 0)
			expect[ne++] = i;
	for (int i = 0; i < N; i += 3) {
		ck_assert_int_eq(wref_signal_disconnect(s, o[i], on_a), 0);
		ck_assert_int_eq(wref_signal_connect(s, o[i], on_a), 0);
		expect[ne++] = i;
	}
	norder = 0;
	ck_assert_uint_eq(wref_signal_emit(s, NULL), N);
	ck_assert_int_eq(norder, 256); /* order[] keeps the first 256 */
	for (int i = 0; i < 256; i++)
		ck_assert_int_eq(order[i], expect[i]);
	for (int i = 0; i < N; i++)
		wref_release(o[i]);
	wref_release(s);
	ct_assert_no_leak(start);
}
END_TEST

static Suite *signal_suite(void)
{
	Suite *s = suite_create("signal");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, test_bad_args);
	tcase_add_test(tc, test_connect_emit_order);
	tcase_add_test(tc, test_order_large);
	tcase_add_test(tc, test_dead_subscriber_leaves);
	tcase_add_test(tc, test_disconnect);
	tcase_add_test(tc, test_modify_from_call);
	tcase_add_test(tc, test_lifetimes);
	tcase_add_test(tc, test_enomem);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ct_run_suite(signal_suite());
}
