/*
 * check_alloc_fail.c - allocation-failure injection sweep.
 *
 * For every API sequence below, n = 0, 1, 2, ... : set up the previous
 * state (no injection), make the n-th allocation of the operation fail
 * (wref__alloc_fail_after(n)), run the operation, and check:
 *  - if the injected failure fired, the operation reported it (NULL + errno
 *    ENOMEM, or -ENOMEM), or the site is one the library absorbs by design
 *    (listed per sequence, e.g. the trashcan's growth, which falls back to
 *    recursion) and the operation completed;
 *  - the previous state is intact and usable (verify + retry succeeds);
 *  - after tearing everything down + wref_flush + a grace period,
 *    wref_stats objects_live / blocks_live are back where they started.
 * The sweep for a sequence ends at the first n whose failure does not fire
 * (the operation made fewer than n+1 allocations).
 *
 * Whether the injected failure fired is observed by wrapping wref__alloc /
 * wref__zalloc at link time (-Wl,--wrap; see tests/reliability.mk): the
 * tests link the static core library, so every allocation in lib/ goes
 * through the wrappers.
 */
#include "internal.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation observer --------------------------------------------------- */

void *__real_wref__alloc(size_t n);
void *__real_wref__zalloc(size_t n);
static _Atomic long n_allocs, n_failed;

void *__wrap_wref__alloc(size_t n)
{
	void *p = __real_wref__alloc(n);
	atomic_fetch_add(&n_allocs, 1);
	if (!p)
		atomic_fetch_add(&n_failed, 1);
	return p;
}
void *__wrap_wref__zalloc(size_t n)
{
	void *p = __real_wref__zalloc(n);
	atomic_fetch_add(&n_allocs, 1);
	if (!p)
		atomic_fetch_add(&n_failed, 1);
	return p;
}

/* ---- sequences -------------------------------------------------------------- */

#define MAXO 8
struct st {
	void *o[MAXO];       /* objects the sequence owns */
	wref_ref *r[MAXO];   /* refs it owns */
	void *h[MAXO];       /* other handles (containers, finalizers...) */
	void *res;           /* the operation's result */
	int cb_count;        /* callback runs */
};

struct seq {
	const char *name;
	void (*setup)(struct st *s);
	/* 0, or -ENOMEM when the operation reported the failure */
	int (*op)(struct st *s);
	/* after a reported failure: previous state intact and usable */
	void (*verify)(struct st *s);
	void (*teardown)(struct st *s);
	bool absorbs; /* a failure may be absorbed (op succeeds anyway) */
};

static long sites_total, absorbed_total;

static int ptr_result(void *p)
{
	if (p)
		return 0;
	ck_assert_int_eq(errno, ENOMEM);
	return -ENOMEM;
}

static void settle(void)
{
	ck_assert_int_eq(wref_flush(), 0);
	urcu_bp_barrier(); /* control blocks freed after a grace period */
	ck_assert_int_eq(wref_flush(), 0);
}

static void run_seq(const struct seq *q)
{
	struct wref_stats s0, s1;
	settle();
	wref_stats(&s0);
	long sites = 0, absorbed = 0;
	for (long n = 0;; n++) {
		ck_assert_msg(n < 10000, "%s: no end", q->name);
		struct st st;
		memset(&st, 0, sizeof st);
		if (q->setup)
			q->setup(&st);
		settle();
		long f0 = atomic_load(&n_failed);
		wref__alloc_fail_after(n);
		errno = 0;
		int rc = q->op(&st);
		wref__alloc_fail_after(-1);
		bool fired = atomic_load(&n_failed) != f0;
		if (!fired) {
			ck_assert_msg(rc == 0, "%s n=%ld: failed (%d) with no "
				      "injected failure", q->name, n, rc);
		} else if (rc == 0) {
			ck_assert_msg(q->absorbs, "%s n=%ld: injected failure "
				      "not reported", q->name, n);
			absorbed++;
		} else {
			ck_assert_msg(rc == -ENOMEM, "%s n=%ld: rc %d", q->name,
				      n, rc);
		}
		if (fired && getenv("AF_VERBOSE"))
			printf("  %s: n=%ld fired rc=%d\n", q->name, n, rc);
		if (fired) {
			sites++;
			if (rc != 0 && q->verify)
				q->verify(&st);
		}
		if (q->teardown)
			q->teardown(&st);
		settle();
		wref_stats(&s1);
		ck_assert_msg(s1.objects_live == s0.objects_live,
			      "%s n=%ld: objects_live %llu -> %llu", q->name, n,
			      (unsigned long long)s0.objects_live,
			      (unsigned long long)s1.objects_live);
		ck_assert_msg(s1.blocks_live == s0.blocks_live,
			      "%s n=%ld: blocks_live %llu -> %llu", q->name, n,
			      (unsigned long long)s0.blocks_live,
			      (unsigned long long)s1.blocks_live);
		if (!fired)
			break;
	}
	printf("alloc-fail: %-40s %ld site(s)%s\n", q->name, sites,
	       absorbed ? " (some absorbed)" : "");
	sites_total += sites;
	absorbed_total += absorbed;
}

/* ---- core: objects and refs --------------------------------------------------- */

static int destroyed;
static void obj_destroy(void *p)
{
	(void)p;
	destroyed++;
}
static const wref_type obj_type = { .name = "af_obj",
				    .destroy = obj_destroy };

static void release_all(struct st *s)
{
	for (int i = 0; i < MAXO; i++) {
		wref_release(s->r[i]);
		wref_release(s->o[i]);
		wref_release(s->h[i]);
	}
	wref_release(s->res);
	s->res = NULL;
}

static int op_new(struct st *s)
{
	s->res = wref_new(&obj_type, 48);
	return ptr_result(s->res);
}

static void setup_obj(struct st *s)
{
	s->o[0] = wref_new(&obj_type, 16);
	ck_assert_ptr_nonnull(s->o[0]);
}

static void setup_obj_shared(struct st *s)
{
	setup_obj(s);
	s->r[0] = wref_ref_new(s->o[0], NULL, NULL);
	ck_assert_ptr_nonnull(s->r[0]);
}

static int op_ref_shared(struct st *s)
{
	s->res = wref_ref_new(s->o[0], NULL, NULL);
	return ptr_result(s->res);
}

static void on_death(wref_ref *r, void *arg)
{
	(void)r;
	((struct st *)arg)->cb_count++;
}

static int op_ref_cb(struct st *s)
{
	s->res = wref_ref_new(s->o[0], on_death, s);
	return ptr_result(s->res);
}

/* the previous state: o[0] alive with count 1, r[0] (if any) upgrades it,
 * and the operation succeeds when retried */
static void verify_obj(struct st *s)
{
	ck_assert_uint_eq(wref_strong_count(s->o[0]), 1);
	ck_assert_uint_eq(wref_weak_count(s->o[0]), s->r[0] ? 1 : 0);
	if (s->r[0]) {
		void *g = wref_ref_get(s->r[0]);
		ck_assert_ptr_eq(g, s->o[0]);
		wref_release(g);
	}
	wref_ref *r = wref_ref_new(s->o[0], on_death, s);
	ck_assert_ptr_nonnull(r);
	wref_release(s->o[0]);
	s->o[0] = NULL;
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(s->cb_count, 1);
	ck_assert_ptr_null(wref_ref_get(r));
	wref_release(r);
}

/* callback refs: the callback runs exactly once iff the ref was made */
static void teardown_cb(struct st *s)
{
	bool made = s->res != NULL;
	int before = s->cb_count;
	wref_release(s->o[0]);
	s->o[0] = NULL;
	ck_assert_int_eq(wref_flush(), 0);
	if (made)
		ck_assert_int_eq(s->cb_count, before + 1);
	release_all(s);
}

/* delivery of callbacks: no allocation, nothing to fail */
static void setup_three_cbs(struct st *s)
{
	setup_obj(s);
	for (int i = 0; i < 3; i++) {
		s->r[i] = wref_ref_new(s->o[0], on_death, s);
		ck_assert_ptr_nonnull(s->r[i]);
	}
}
static int op_kill(struct st *s)
{
	wref_release(s->o[0]);
	s->o[0] = NULL;
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(s->cb_count, 3);
	return 0;
}

/* wide cascade: one object holding 100 others; their deaths queue on the
 * trashcan, whose growth may fail (absorbed: destroy runs recursively) */
struct fan {
	void *kids[100];
};
static void fan_destroy(void *p)
{
	struct fan *f = p;
	destroyed++;
	for (int i = 0; i < 100; i++)
		wref_release(f->kids[i]);
}
static const wref_type fan_type = { .name = "fan", .destroy = fan_destroy };
static void setup_fan(struct st *s)
{
	struct fan *f = wref_new(&fan_type, sizeof *f);
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 100; i++) {
		f->kids[i] = wref_new(&obj_type, 8);
		ck_assert_ptr_nonnull(f->kids[i]);
	}
	s->o[0] = f;
	s->r[0] = wref_ref_new(f->kids[50], on_death, s);
}
static int op_kill_fan(struct st *s)
{
	int d0 = destroyed;
	wref_release(s->o[0]);
	s->o[0] = NULL;
	ck_assert_int_eq(destroyed, d0 + 101);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(s->cb_count, 1);
	return 0;
}

/* getweakrefs */
static int op_weak_refs(struct st *s)
{
	wref_ref *out[4];
	size_t n = wref_weak_refs(s->o[0], out, 4);
	ck_assert_uint_eq(n, 1);
	wref_release(out[0]);
	return 0;
}

static const struct seq core_seqs[] = {
	{ "wref_new", NULL, op_new, NULL, release_all, false },
	{ "wref_ref_new shared (fresh object)", setup_obj, op_ref_shared,
	  verify_obj, release_all, false },
	{ "wref_ref_new shared (existing shared)", setup_obj_shared,
	  op_ref_shared, verify_obj, release_all, false },
	{ "wref_ref_new callback (fresh object)", setup_obj, op_ref_cb,
	  verify_obj, teardown_cb, false },
	{ "wref_ref_new callback (has block)", setup_obj_shared, op_ref_cb,
	  verify_obj, teardown_cb, false },
	{ "callback delivery", setup_three_cbs, op_kill, NULL, release_all,
	  false },
	{ "cascade of 101 deaths", setup_fan, op_kill_fan, NULL, release_all,
	  true },
	{ "wref_weak_refs", setup_obj_shared, op_weak_refs, NULL, release_all,
	  false },
};

static void sweep(const struct seq *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		run_seq(&v[i]);
}

START_TEST(core_thread_mode)
{
	sweep(core_seqs, sizeof core_seqs / sizeof core_seqs[0]);
	printf("alloc-fail: core (executor thread): %ld injection sites, %ld "
	       "absorbed\n", sites_total, absorbed_total);
}
END_TEST

START_TEST(core_inline_mode)
{
	wref_config c = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&c), 0);
	sweep(core_seqs, sizeof core_seqs / sizeof core_seqs[0]);
	printf("alloc-fail: core (inline): %ld injection sites, %ld "
	       "absorbed\n", sites_total, absorbed_total);
}
END_TEST


/* ---- method / finalize / signal ----------------------------------------------- */

static void meth_fn(void *obj, void *arg)
{
	(void)obj;
	((struct st *)arg)->cb_count++;
}

static int op_method_new(struct st *s)
{
	s->res = wref_method_new(s->o[0], meth_fn);
	return ptr_result(s->res);
}

static void verify_method(struct st *s)
{
	verify_obj(s);
}

static void teardown_method(struct st *s)
{
	if (s->res) {
		int c = s->cb_count;
		ck_assert_int_eq(wref_method_call(s->res, s), 0);
		ck_assert_int_eq(s->cb_count, c + 1);
	}
	release_all(s);
}

static void fin_fn(void *arg)
{
	((struct st *)arg)->cb_count++;
}

static int op_finalize(struct st *s)
{
	s->res = wref_finalize(s->o[0], fin_fn, s, WREF_FIN_ATEXIT);
	return ptr_result(s->res);
}

/* the finalizer, if made, runs once at the object's death */
static void teardown_fin(struct st *s)
{
	bool made = s->res != NULL;
	int before = s->cb_count;
	if (made)
		ck_assert(wref_finalizer_alive(s->res));
	wref_release(s->o[0]);
	s->o[0] = NULL;
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(s->cb_count, before + (made ? 1 : 0));
	release_all(s);
}

static int op_signal_new(struct st *s)
{
	s->res = wref_signal_new();
	return ptr_result(s->res);
}

static void setup_signal(struct st *s)
{
	setup_obj(s);
	s->h[0] = wref_signal_new();
	ck_assert_ptr_nonnull(s->h[0]);
	/* a previous subscriber */
	s->o[1] = wref_new(&obj_type, 8);
	ck_assert_int_eq(wref_signal_connect(s->h[0], s->o[1], meth_fn), 0);
}

static int op_connect(struct st *s)
{
	return wref_signal_connect(s->h[0], s->o[0], meth_fn);
}

static void verify_connect(struct st *s)
{
	ck_assert_uint_eq(wref_signal_len(s->h[0]), 1);
	int c = s->cb_count;
	ck_assert_uint_eq(wref_signal_emit(s->h[0], s), 1);
	ck_assert_int_eq(s->cb_count, c + 1);
	ck_assert_int_eq(wref_signal_disconnect(s->h[0], s->o[0], meth_fn),
			 -ENOENT);
	ck_assert_int_eq(wref_signal_connect(s->h[0], s->o[0], meth_fn), 0);
	ck_assert_uint_eq(wref_signal_len(s->h[0]), 2);
	s->cb_count = 0;
	verify_obj(s);
}

/* emit with more subscribers than its on-stack snapshot: the snapshot's
 * growth may fail; documented: only those pinned so far are called */
#define NSUBS 40
static void sub_count(void *obj, void *arg)
{
	(void)obj;
	((struct st *)arg)->cb_count++;
}
static void *subs[NSUBS];
static void setup_many_subs(struct st *s)
{
	s->h[0] = wref_signal_new();
	ck_assert_ptr_nonnull(s->h[0]);
	for (int i = 0; i < NSUBS; i++) {
		subs[i] = wref_new(&obj_type, 8);
		ck_assert_int_eq(wref_signal_connect(s->h[0], subs[i],
						     sub_count), 0);
	}
}
static long emit_partial;
static int op_emit(struct st *s)
{
	size_t n = wref_signal_emit(s->h[0], s);
	ck_assert_int_eq((int)n, s->cb_count);
	ck_assert_int_eq(errno, n == NSUBS ? 0 : ENOMEM);
	if (n != NSUBS)
		emit_partial++;
	ck_assert_uint_eq(wref_signal_len(s->h[0]), NSUBS);
	return 0;
}
static void teardown_many_subs(struct st *s);

/* both the up-front snapshot and its growth fail: a partial emit, and
 * errno says so (the injection sweep fails one allocation at a time, which
 * the stack snapshot absorbs) */
START_TEST(test_emit_partial_errno)
{
	struct st st = { 0 };
	struct st *s = &st;
	setup_many_subs(s);
	s->cb_count = 0;
	errno = 0;
	wref__alloc_fail_from(0);
	size_t n = wref_signal_emit(s->h[0], s);
	int err = errno;
	wref__alloc_fail_after(-1);
	ck_assert_uint_lt(n, NSUBS);
	ck_assert_int_eq((int)n, s->cb_count);
	ck_assert_int_eq(err, ENOMEM);
	s->cb_count = 0;
	errno = EINVAL;
	ck_assert_uint_eq(wref_signal_emit(s->h[0], s), NSUBS);
	ck_assert_int_eq(errno, 0); /* complete: errno cleared */
	teardown_many_subs(s);
}
END_TEST

static void teardown_many_subs(struct st *s)
{
	s->cb_count = 0;
	ck_assert_uint_eq(wref_signal_emit(s->h[0], s), NSUBS);
	for (int i = 0; i < NSUBS; i++)
		wref_release(subs[i]);
	ck_assert_uint_eq(wref_signal_len(s->h[0]), 0);
	release_all(s);
}

/* releasing a container: its table is destroyed on the executor, or here
 * when that work item cannot be allocated (absorbed) */
static int op_release_h0(struct st *s)
{
	wref_release(s->h[0]);
	s->h[0] = NULL;
	return 0;
}

/* ---- containers ---------------------------------------------------------------- */

static int op_valmap_new(struct st *s)
{
	wref_map_options o = { .retain_ms = 50, .retain_max = 4 };
	s->res = wref_valmap_new(&o);
	return ptr_result(s->res);
}

static const char K1[] = "key-one", K2[] = "key-two";

static void setup_valmap(struct st *s)
{
	setup_obj(s);
	s->h[0] = wref_valmap_new(NULL);
	ck_assert_ptr_nonnull(s->h[0]);
	s->o[1] = wref_new(&obj_type, 8);
	ck_assert_int_eq(wref_valmap_set(s->h[0], K1, sizeof K1, s->o[1]), 0);
}

static void setup_valmap_k2(struct st *s)
{
	setup_valmap(s);
	s->o[2] = wref_new(&obj_type, 8);
	ck_assert_int_eq(wref_valmap_set(s->h[0], K2, sizeof K2, s->o[2]), 0);
}

static int op_valmap_set(struct st *s)
{
	return wref_valmap_set(s->h[0], K2, sizeof K2, s->o[0]);
}

/* the map as before: K1 -> o[1]; K2 -> o[2] or absent */
static void verify_valmap(struct st *s)
{
	void *g = wref_valmap_get(s->h[0], K1, sizeof K1);
	ck_assert_ptr_eq(g, s->o[1]);
	wref_release(g);
	g = wref_valmap_get(s->h[0], K2, sizeof K2);
	ck_assert_ptr_eq(g, s->o[2]);
	wref_release(g);
	ck_assert_uint_eq(wref_valmap_len(s->h[0]), s->o[2] ? 2 : 1);
	ck_assert_int_eq(wref_valmap_set(s->h[0], K2, sizeof K2, s->o[0]),
			 0);
	g = wref_valmap_get(s->h[0], K2, sizeof K2);
	ck_assert_ptr_eq(g, s->o[0]);
	wref_release(g);
}

static void *make_obj(const void *key, size_t len, void *arg)
{
	(void)key;
	(void)len;
	((struct st *)arg)->cb_count++;
	return wref_new(&obj_type, 8); /* NULL + ENOMEM under injection */
}

static int op_goc(struct st *s)
{
	s->res = wref_valmap_get_or_create(s->h[0], K2, sizeof K2, make_obj,
					   s);
	if (s->res) {
		void *g = wref_valmap_get(s->h[0], K2, sizeof K2);
		ck_assert_ptr_eq(g, s->res);
		wref_release(g);
	}
	return ptr_result(s->res);
}

static void setup_valmap_once(struct st *s)
{
	setup_obj(s);
	wref_map_options o = { .flags = WREF_MAP_CREATE_ONCE };
	s->h[0] = wref_valmap_new(&o);
	ck_assert_ptr_nonnull(s->h[0]);
	s->o[1] = wref_new(&obj_type, 8);
	ck_assert_int_eq(wref_valmap_set(s->h[0], K1, sizeof K1, s->o[1]), 0);
}

static void verify_goc(struct st *s)
{
	/* nothing half-made is left under K2 */
	ck_assert_ptr_null(wref_valmap_get(s->h[0], K2, sizeof K2));
	ck_assert_int_eq(errno, ENOENT);
	verify_valmap(s);
}

/* a full walk needs its pin array */
static int walk_count(const void *k, size_t n, void *obj, void *arg)
{
	(void)k;
	(void)n;
	(void)obj;
	((struct st *)arg)->cb_count++;
	return 0;
}
static int op_valmap_foreach(struct st *s)
{
	s->cb_count = 0;
	int rc = wref_valmap_foreach(s->h[0], walk_count, s);
	if (rc == 0)
		ck_assert_int_eq(s->cb_count, 2);
	else
		ck_assert_int_eq(s->cb_count, 0);
	return rc;
}

static void verify_walk_valmap(struct st *s)
{
	s->cb_count = 0;
	ck_assert_int_eq(wref_valmap_foreach(s->h[0], walk_count, s), 0);
	ck_assert_int_eq(s->cb_count, 2);
}

static int op_keymap_new(struct st *s)
{
	s->res = wref_keymap_new(NULL);
	return ptr_result(s->res);
}

static void setup_keymap(struct st *s)
{
	setup_obj(s);
	s->h[0] = wref_keymap_new(NULL);
	ck_assert_ptr_nonnull(s->h[0]);
	s->o[1] = wref_new(&obj_type, 8); /* key */
	s->o[2] = wref_new(&obj_type, 8); /* value */
	ck_assert_int_eq(wref_keymap_set(s->h[0], s->o[1], s->o[2]), 0);
}

static int op_keymap_set(struct st *s)
{
	return wref_keymap_set(s->h[0], s->o[0], s->o[2]);
}

static int op_keymap_replace(struct st *s)
{
	return wref_keymap_set(s->h[0], s->o[1], s->o[0]);
}

static void verify_keymap(struct st *s)
{
	void *g = wref_keymap_get(s->h[0], s->o[1]);
	ck_assert_ptr_eq(g, s->o[2]);
	wref_release(g);
	ck_assert_uint_eq(wref_keymap_len(s->h[0]), 1);
	/* o[2] is held by the map and by us */
	ck_assert_uint_eq(wref_strong_count(s->o[2]), 2);
	ck_assert_ptr_null(wref_keymap_get(s->h[0], s->o[0]));
	ck_assert_int_eq(wref_keymap_set(s->h[0], s->o[0], s->o[2]), 0);
	ck_assert_uint_eq(wref_keymap_len(s->h[0]), 2);
	verify_obj(s); /* o[0] dies: its entry goes, o[2] is released once */
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(wref_strong_count(s->o[2]), 2);
	ck_assert_uint_eq(wref_keymap_len(s->h[0]), 1);
}

static int km_walk(void *k, void *v, void *arg)
{
	(void)k;
	(void)v;
	((struct st *)arg)->cb_count++;
	return 0;
}
static int op_keymap_foreach(struct st *s)
{
	s->cb_count = 0;
	int rc = wref_keymap_foreach(s->h[0], km_walk, s);
	ck_assert_int_eq(s->cb_count, rc == 0 ? 1 : 0);
	return rc;
}

static int op_set_new(struct st *s)
{
	s->res = wref_set_new(NULL);
	return ptr_result(s->res);
}

static void setup_set(struct st *s)
{
	setup_obj(s);
	s->h[0] = wref_set_new(NULL);
	ck_assert_ptr_nonnull(s->h[0]);
	s->o[1] = wref_new(&obj_type, 8);
	ck_assert_int_eq(wref_set_add(s->h[0], s->o[1]), 0);
}

static int op_set_add(struct st *s)
{
	return wref_set_add(s->h[0], s->o[0]);
}

static void verify_set(struct st *s)
{
	ck_assert(wref_set_contains(s->h[0], s->o[1]));
	ck_assert(!wref_set_contains(s->h[0], s->o[0]));
	ck_assert_uint_eq(wref_set_len(s->h[0]), 1);
	ck_assert_int_eq(wref_set_add(s->h[0], s->o[0]), 0);
	ck_assert_int_eq(wref_set_add(s->h[0], s->o[0]), -EEXIST);
	ck_assert_uint_eq(wref_set_len(s->h[0]), 2);
	verify_obj(s);
	ck_assert_uint_eq(wref_set_len(s->h[0]), 1);
}

static int set_walk(void *o, void *arg)
{
	(void)o;
	((struct st *)arg)->cb_count++;
	return 0;
}
static int op_set_foreach(struct st *s)
{
	s->cb_count = 0;
	int rc = wref_set_foreach(s->h[0], set_walk, s);
	ck_assert_int_eq(s->cb_count, rc == 0 ? 1 : 0);
	return rc;
}

static const struct seq upper_seqs[] = {
	{ "wref_method_new (fresh object)", setup_obj, op_method_new,
	  verify_method, teardown_method, false },
	{ "wref_method_new (has block)", setup_obj_shared, op_method_new,
	  verify_method, teardown_method, false },
	{ "wref_finalize (fresh object, atexit)", setup_obj, op_finalize,
	  verify_obj, teardown_fin, false },
	{ "wref_finalize (has block)", setup_obj_shared, op_finalize,
	  verify_obj, teardown_fin, false },
	{ "wref_signal_new", NULL, op_signal_new, NULL, release_all, false },
	{ "wref_signal_connect (fresh object)", setup_signal, op_connect,
	  verify_connect, release_all, false },
	{ "wref_signal_emit (40 subscribers)", setup_many_subs, op_emit, NULL,
	  teardown_many_subs, true },
	{ "signal release", setup_signal, op_release_h0, NULL, release_all,
	  true },
	{ "wref_valmap_new (retention tier)", NULL, op_valmap_new, NULL,
	  release_all, false },
	{ "wref_valmap_set (new key, fresh object)", setup_valmap,
	  op_valmap_set, verify_valmap, release_all, false },
	{ "wref_valmap_set (replace)", setup_valmap_k2, op_valmap_set,
	  verify_valmap, release_all, false },
	{ "wref_valmap_get_or_create", setup_valmap, op_goc, verify_goc,
	  release_all, false },
	{ "wref_valmap_get_or_create (CREATE_ONCE)", setup_valmap_once,
	  op_goc, verify_goc, release_all, false },
	{ "wref_valmap_foreach", setup_valmap_k2, op_valmap_foreach,
	  verify_walk_valmap, release_all, false },
	{ "valmap release", setup_valmap_k2, op_release_h0, NULL, release_all,
	  true },
	{ "wref_keymap_new", NULL, op_keymap_new, NULL, release_all, false },
	{ "wref_keymap_set (new key, fresh object)", setup_keymap,
	  op_keymap_set, verify_keymap, release_all, false },
	{ "wref_keymap_set (replace value)", setup_keymap, op_keymap_replace,
	  NULL, release_all, false },
	{ "wref_keymap_foreach", setup_keymap, op_keymap_foreach, NULL,
	  release_all, false },
	{ "keymap release", setup_keymap, op_release_h0, NULL, release_all,
	  true },
	{ "wref_set_new", NULL, op_set_new, NULL, release_all, false },
	{ "wref_set_add (fresh object)", setup_set, op_set_add, verify_set,
	  release_all, false },
	{ "wref_set_foreach", setup_set, op_set_foreach, NULL, release_all,
	  false },
	{ "set release", setup_set, op_release_h0, NULL, release_all, true },
};

START_TEST(upper_thread_mode)
{
	sweep(upper_seqs, sizeof upper_seqs / sizeof upper_seqs[0]);
	printf("alloc-fail: method/finalize/signal/containers (executor "
	       "thread): %ld injection sites, %ld absorbed (emit partial "
	       "%ld)\n", sites_total, absorbed_total, emit_partial);
}
END_TEST

START_TEST(upper_inline_mode)
{
	wref_config c = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&c), 0);
	sweep(upper_seqs, sizeof upper_seqs / sizeof upper_seqs[0]);
	printf("alloc-fail: method/finalize/signal/containers (inline): %ld "
	       "injection sites, %ld absorbed (emit partial %ld)\n",
	       sites_total, absorbed_total, emit_partial);
}
END_TEST

/* WREF_FAIL_ALLOC in the environment arms the same hook at start-up; here
 * the hook is re-armed the same way it would be and must fail the very
 * next allocation only */
START_TEST(single_shot)
{
	wref__alloc_fail_after(0);
	errno = 0;
	ck_assert_ptr_null(wref_new(&obj_type, 8));
	ck_assert_int_eq(errno, ENOMEM);
	void *o = wref_new(&obj_type, 8); /* only one failure */
	ck_assert_ptr_nonnull(o);
	wref_release(o);
	wref__alloc_fail_after(-1);
}
END_TEST

static Suite *alloc_fail_suite(void)
{
	Suite *s = suite_create("alloc_fail");
	TCase *tc = tcase_create("sweep");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, single_shot);
	tcase_add_test(tc, test_emit_partial_errno);
	tcase_add_test(tc, core_thread_mode);
	tcase_add_test(tc, core_inline_mode);
	tcase_add_test(tc, upper_thread_mode);
	tcase_add_test(tc, upper_inline_mode);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	SRunner *sr = srunner_create(alloc_fail_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
