/*
 * check_object.c - objects: wref_new/retain/release/type_of/strong_count,
 * destroy exactly once on the releasing thread, cascades (rule 9),
 * saturation (rule 11), argument errors, ENOMEM, stats.
 */
#include "core_test.h"

#include <signal.h>

static _Atomic int destroyed;
static pthread_t destroy_thread;

struct obj {
	uint64_t a[4];
};

static void obj_destroy(void *p)
{
	(void)p;
	destroy_thread = pthread_self();
	atomic_fetch_add(&destroyed, 1);
}

static const wref_type obj_type = {
	.name = "obj",
	.destroy = obj_destroy,
};
static const wref_type plain_type = { .name = "plain" };

START_TEST(test_new_basics)
{
	struct wref_stats st0 = ct_stats();
	struct obj *o = wref_new(&obj_type, sizeof *o);
	ck_assert_ptr_nonnull(o);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(o->a[i], 0); /* zeroed payload */
	ck_assert_uint_eq((uintptr_t)o % 16, 0);
	ck_assert_ptr_eq(wref_type_of(o), &obj_type);
	ck_assert_uint_eq(wref_strong_count(o), 1);
	ck_assert_uint_eq(wref_weak_count(o), 0);
	ck_assert_uint_eq(wref_weak_refs(o, NULL, 0), 0);
	struct wref_stats st1 = ct_stats();
	ck_assert_uint_eq(st1.objects_created, st0.objects_created + 1);
	ck_assert_uint_eq(st1.objects_live, st0.objects_live + 1);
	ck_assert_uint_eq(st1.blocks_live, st0.blocks_live);

	/* size 0 is a valid object */
	void *z = wref_new(&plain_type, 0);
	ck_assert_ptr_nonnull(z);
	ck_assert_ptr_eq(wref_type_of(z), &plain_type);
	wref_release(z);

	wref_release(o);
	ck_assert_int_eq(destroyed, 1);
	ct_assert_no_leak(st0);
}
END_TEST

START_TEST(test_null_args)
{
	errno = 0;
	ck_assert_ptr_null(wref_new(NULL, 8));
	ck_assert_int_eq(errno, EINVAL);
	/* flags other than WREF_TYPE_*: EINVAL, never the library's own
	 * type bits (the top two are internal: lib/object.h) */
	static const unsigned bad[] = { 0x2u, 1u << 30, 1u << 31,
					WREF_TYPE_NO_WEAK | 0x100u };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const wref_type t = { .name = "bad", .flags = bad[i] };
		errno = 0;
		ck_assert_ptr_null(wref_new(&t, 8));
		ck_assert_int_eq(errno, EINVAL);
	}
	const wref_type nw = { .name = "nw", .flags = WREF_TYPE_NO_WEAK };
	void *nwo = wref_new(&nw, 8);
	ck_assert_ptr_nonnull(nwo);
	wref_release(nwo);
	errno = 0;
	ck_assert_ptr_null(wref_new(&obj_type, SIZE_MAX));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(wref_new(&obj_type, SIZE_MAX - 8));
	ck_assert_int_eq(errno, ENOMEM);
	wref_release(NULL); /* no-op */
	ck_assert_ptr_null(wref_retain(NULL));
	ck_assert_ptr_null(wref_type_of(NULL));
	ck_assert_uint_eq(wref_strong_count(NULL), 0);
	ck_assert_uint_eq(wref_weak_count(NULL), 0);
	ck_assert_uint_eq(wref_weak_refs(NULL, NULL, 0), 0);
	wref_ref *out[1];
	ck_assert_uint_eq(wref_weak_refs(NULL, out, 1), 0);
	void *o = wref_new(&plain_type, 8);
	/* out NULL with cap > 0 is an argument error: 0, no crash */
	ck_assert_uint_eq(wref_weak_refs(o, NULL, 4), 0);
	wref_release(o);
}
END_TEST

START_TEST(test_retain_release)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	ck_assert_ptr_eq(wref_retain(o), o);
	ck_assert_ptr_eq(wref_retain(o), o);
	ck_assert_uint_eq(wref_strong_count(o), 3);
	wref_release(o);
	wref_release(o);
	ck_assert_uint_eq(wref_strong_count(o), 1);
	ck_assert_int_eq(destroyed, 0);
	wref_release(o);
	/* destroy ran once, on this thread, before release returned */
	ck_assert_int_eq(destroyed, 1);
	ck_assert(pthread_equal(destroy_thread, pthread_self()));
}
END_TEST

/* the last release from another thread: destroy runs on that thread */
static void *release_thread(void *p)
{
	wref_release(p);
	return NULL;
}

START_TEST(test_destroy_on_releasing_thread)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, release_thread, o), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(destroyed, 1);
	ck_assert(pthread_equal(destroy_thread, t));
}
END_TEST

/* many threads retain/release one object: exactly one destroy, at the end */
struct rr_arg {
	void *o;
	long n;
};
static void *rr_thread(void *p)
{
	struct rr_arg *a = p;
	for (long i = 0; i < a->n; i++) {
		wref_retain(a->o);
		wref_release(a->o);
	}
	wref_release(a->o); /* each thread owns one ref */
	return NULL;
}

START_TEST(test_concurrent_retain_release)
{
	enum { T = 4 };
	struct obj *o = wref_new(&obj_type, sizeof *o);
	struct rr_arg a = { o, 20000 * ct_scale() };
	pthread_t t[T];
	for (int i = 0; i < T; i++) {
		wref_retain(o);
		ck_assert_int_eq(pthread_create(&t[i], NULL, rr_thread, &a), 0);
	}
	for (int i = 0; i < T; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(destroyed, 0);
	ck_assert_uint_eq(wref_strong_count(o), 1);
	wref_release(o);
	ck_assert_int_eq(destroyed, 1);
}
END_TEST

/* ---- cascades (rule 9) ------------------------------------------------ */

struct link {
	void *next;
	wref_ref *wr; /* optional weak ref to next */
};
static _Atomic long link_destroyed;
static void link_destroy(void *p)
{
	struct link *l = p;
	atomic_fetch_add_explicit(&link_destroyed, 1, memory_order_relaxed);
	wref_release(l->wr);
	wref_release(l->next);
}
static const wref_type link_type = { .name = "link", .destroy = link_destroy };

struct chain_arg {
	long n;
	bool weak;
	long destroyed_at_return;
};

static void *chain_thread(void *p)
{
	struct chain_arg *a = p;
	void *head = NULL;
	/* build from the tail: each object holds the next one */
	for (long i = 0; i < a->n; i++) {
		struct link *l = wref_new(&link_type, sizeof *l);
		ck_assert_ptr_nonnull(l);
		l->next = head;
		if (a->weak && head) {
			l->wr = wref_ref_new(head, NULL, NULL);
			ck_assert_ptr_nonnull(l->wr);
		}
		head = l;
	}
	wref_release(head);
	a->destroyed_at_return = atomic_load(&link_destroyed);
	return NULL;
}

static void run_chain(long n, bool weak)
{
	struct wref_stats st0 = ct_stats();
	pthread_attr_t attr;
	pthread_t t;
	struct chain_arg a = { .n = n, .weak = weak };
	atomic_store(&link_destroyed, 0);
	pthread_attr_init(&attr);
	/* a recursive destroy of the chain would need ~100 bytes of stack
	 * per level: 1,000,000 levels cannot fit in 256 KiB */
	ck_assert_int_eq(pthread_attr_setstacksize(&attr,
			 ct_tsan() ? 1024 * 1024 : 256 * 1024), 0);
	ck_assert_int_eq(pthread_create(&t, &attr, chain_thread, &a), 0);
	pthread_join(t, NULL);
	pthread_attr_destroy(&attr);
	/* every destroy ran on the releasing thread before it returned */
	ck_assert_int_eq(a.destroyed_at_return, n);
	ct_assert_no_leak(st0);
}

START_TEST(test_cascade_chain_1m)
{
	/* under TSan (~10x slower, bigger frames): 250,000 levels, still far
	 * beyond what a 1 MiB stack could recurse through */
	run_chain(ct_tsan() ? 250000 : 1000000, false);
}
END_TEST

START_TEST(test_cascade_chain_weak)
{
	/* each object also weakly referenced: destroys go through the
	 * control block and the grace period */
	run_chain(ct_tsan() ? 20000 : 100000, true);
}
END_TEST

/* a destroy that releases several objects, some the last ref, some not */
struct tree {
	void *kids[3];
};
static void tree_destroy(void *p)
{
	struct tree *t = p;
	atomic_fetch_add(&destroyed, 1);
	for (int i = 0; i < 3; i++)
		wref_release(t->kids[i]);
}
static const wref_type tree_type = { .name = "tree", .destroy = tree_destroy };

static void *make_tree(int depth)
{
	struct tree *t = wref_new(&tree_type, sizeof *t);
	if (depth > 0)
		for (int i = 0; i < 3; i++)
			t->kids[i] = make_tree(depth - 1);
	return t;
}

START_TEST(test_cascade_tree)
{
	struct wref_stats st0 = ct_stats();
	struct tree *root = make_tree(8); /* (3^9-1)/2 = 9841 nodes */
	/* keep one subtree of depth 6: (3^7-1)/2 = 1093 nodes */
	void *kept = wref_retain(((struct tree *)root->kids[1])->kids[2]);
	wref_release(root);
	ck_assert_int_eq(destroyed, 9841 - 1093);
	ck_assert_uint_eq(wref_strong_count(kept), 1);
	wref_release(kept);
	ck_assert_int_eq(destroyed, 9841);
	ct_assert_no_leak(st0);
}
END_TEST

/* ---- saturation (rule 11) -------------------------------------------- */

/* a saturated object is pinned forever by design (a leak, never a
 * use-after-free): keep it reachable so LeakSanitizer agrees */
static void *volatile pinned_keep[8];
static void keep_pinned(void *o)
{
	for (int i = 0; i < 8; i++)
		if (!pinned_keep[i]) {
			pinned_keep[i] = o;
			return;
		}
}

START_TEST(test_saturation_retain)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	keep_pinned(o);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	ck_assert_ptr_nonnull(r);
	/* put the count just below the saturation zone */
	atomic_store(wref__test_cnt(o), WREF_SAT - 2);
	for (int i = 0; i < 5; i++)
		wref_retain(o);
	uint64_t c = atomic_load(wref__test_cnt(o));
	ck_assert_uint_ge(c, WREF_SAT);
	ck_assert_uint_lt(c, WREF_DEAD);
	ck_assert_uint_ge(wref_strong_count(o), WREF_SAT);
	/* releases never bring it back: pinned forever */
	for (int i = 0; i < 100; i++)
		wref_release(o);
	c = atomic_load(wref__test_cnt(o));
	ck_assert_uint_ge(c, WREF_SAT);
	ck_assert_uint_lt(c, WREF_DEAD);
	ck_assert_int_eq(destroyed, 0);
	/* still upgradable, the upgrade also stays in the zone */
	void *p = wref_ref_get(r);
	ck_assert_ptr_eq(p, o);
	wref_release(p);
	ck_assert(wref_ref_alive(r));
	wref_release(r);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(destroyed, 0);
}
END_TEST

START_TEST(test_saturation_upgrade)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	keep_pinned(o);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	atomic_store(wref__test_cnt(o), WREF_SAT - 3);
	for (int i = 0; i < 10; i++)
		ck_assert_ptr_eq(wref_ref_get(r), o); /* never released */
	uint64_t c = atomic_load(wref__test_cnt(o));
	ck_assert_uint_ge(c, WREF_SAT);
	ck_assert_uint_lt(c, WREF_DEAD);
	for (int i = 0; i < 1000; i++)
		wref_release(o);
	c = atomic_load(wref__test_cnt(o));
	ck_assert_uint_ge(c, WREF_SAT);
	ck_assert_uint_lt(c, WREF_DEAD);
	ck_assert_int_eq(destroyed, 0);
	ck_assert(wref_ref_alive(r));
	wref_release(r);
}
END_TEST

/* concurrent retains across the boundary: never wraps, never destroyed */
static void *sat_thread(void *p)
{
	for (int i = 0; i < 10000; i++) {
		wref_retain(p);
		if (i & 1)
			wref_release(p);
	}
	for (int i = 0; i < 10000; i++)
		wref_release(p);
	return NULL;
}

START_TEST(test_saturation_concurrent)
{
	struct obj *o = wref_new(&obj_type, sizeof *o);
	keep_pinned(o);
	/* inline count 2^61 - 1000 */
	atomic_store(&wref__hdr(o)->word, WREF_SAT - WREF_INL(1000));
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, sat_thread, o);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	uint64_t c = atomic_load(&wref__hdr(o)->word);
	ck_assert_uint_ge(c, WREF_SAT);
	ck_assert_uint_lt(c, WREF_DEAD);
	ck_assert_int_eq(destroyed, 0);
}
END_TEST

/* the warning is printed once per process, however many objects saturate */
START_TEST(test_saturation_warns_once)
{
	FILE *tmp = tmpfile();
	ck_assert_ptr_nonnull(tmp);
	fflush(stderr);
	int saved = dup(2);
	dup2(fileno(tmp), 2);
	for (int i = 0; i < 3; i++) {
		void *o = wref_new(&obj_type, 8);
		keep_pinned(o);
		atomic_store(&wref__hdr(o)->word, WREF_SAT - WREF_INL(1));
		wref_retain(o);
		wref_retain(o);
		wref_release(o);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	char line[512];
	int n = 0;
	while (fgets(line, sizeof line, tmp))
		n += strstr(line, "saturated") != NULL;
	fclose(tmp);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(destroyed, 0);
}
END_TEST

/* ---- misuse: over-release -------------------------------------------- */

static uint64_t kept_hash(const void *p)
{
	(void)p;
	return 1;
}
static bool kept_equal(const void *a, const void *b)
{
	return a == b;
}
/* a type a by-value container could hold: its members' memory is freed
 * after a grace period once marked (docs/core.md, "Who frees what") */
static const wref_type kept_type = {
	.name = "obj",
	.destroy = obj_destroy,
	.hash = kept_hash,
	.equal = kept_equal,
};

START_TEST(test_over_release)
{
	/* keep the memory: marked as a by-value member, the free waits for
	 * a grace period, and our read-side section holds that off */
	struct obj *o = wref_new(&kept_type, sizeof *o);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	wref__cb_mem_rcu(wref__cb_get(o));
	wref__rcu_lock();
	wref_release(o);
	ck_assert_int_eq(destroyed, 1);
	wref_release(o); /* over-release: reported, aborts in debug builds */
	ck_assert_uint_eq(wref_strong_count(o), 0);
	wref_release(o);
	wref__rcu_unlock();
	ck_assert_int_eq(destroyed, 1); /* never destroyed twice */
	ck_assert_ptr_null(wref_ref_get(r));
	wref_release(r);
}
END_TEST

/* ---- ENOMEM ------------------------------------------------------------ */

START_TEST(test_new_enomem)
{
	struct wref_stats st0 = ct_stats();
	wref__alloc_fail_after(0);
	errno = 0;
	ck_assert_ptr_null(wref_new(&obj_type, 16));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_uint_eq(ct_stats().objects_live, st0.objects_live);
	ck_assert_uint_eq(ct_stats().objects_created, st0.objects_created);
	void *o = wref_new(&obj_type, 16); /* the hook fired once */
	ck_assert_ptr_nonnull(o);
	wref_release(o);
	ct_assert_no_leak(st0);
}
END_TEST

START_TEST(test_sizes)
{
#ifndef WREF_DEBUG
	ck_assert_uint_le(sizeof(struct wref__hdr), 24);
#endif
	ck_assert_uint_eq(sizeof(struct wref__hdr) % 16, 0); /* alignment */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("object");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, test_new_basics);
	tcase_add_test(tc, test_null_args);
	tcase_add_test(tc, test_retain_release);
	tcase_add_test(tc, test_destroy_on_releasing_thread);
	tcase_add_test(tc, test_concurrent_retain_release);
	tcase_add_test(tc, test_cascade_chain_1m);
	tcase_add_test(tc, test_cascade_chain_weak);
	tcase_add_test(tc, test_cascade_tree);
	tcase_add_test(tc, test_saturation_retain);
	tcase_add_test(tc, test_saturation_upgrade);
	tcase_add_test(tc, test_saturation_concurrent);
	tcase_add_test(tc, test_saturation_warns_once);
#ifdef WREF_DEBUG
	tcase_add_test_raise_signal(tc, test_over_release, SIGABRT);
#else
	tcase_add_test(tc, test_over_release);
#endif
	tcase_add_test(tc, test_new_enomem);
	tcase_add_test(tc, test_sizes);
	suite_add_tcase(s, tc);
	return ct_run_suite(s);
}
