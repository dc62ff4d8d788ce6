/*
 * check_ref.c - weak refs: wref_ref_new/get/alive/call/hash/equal,
 * wref_weak_count/wref_weak_refs; rules 1, 2, 3, 4, 8, 16 (weak_count);
 * argument errors and ENOMEM through the allocation-failure hook.
 */
#include "core_test.h"

struct obj {
	int id;
	wref_ref *self; /* optional weak ref to itself, checked in destroy */
	void *hold;     /* optional object released by destroy */
	void *other;    /* optional live object destroy makes refs to */
};

static _Atomic int destroyed;
static _Atomic int destroy_saw_dead; /* self ref read dead in destroy */
static _Atomic int destroy_used_lib;

static void obj_destroy(void *p)
{
	struct obj *o = p;
	if (o->self) {
		/* rule 1: no upgrade of an object whose destroy has begun */
		void *x = wref_ref_get(o->self);
		if (!x && !wref_ref_alive(o->self))
			atomic_fetch_add(&destroy_saw_dead, 1);
		wref_release(x);
		wref_release(o->self);
	}
	if (o->other) {
		/* rule 8: destroy runs with no library lock held */
		wref_ref *a = wref_ref_new(o->other, NULL, NULL);
		wref_ref *b = wref_ref_new(o->other, NULL, NULL);
		wref_ref *out[4];
		size_t n = wref_weak_refs(o->other, out, 4);
		for (size_t i = 0; i < n && i < 4; i++)
			wref_release(out[i]);
		if (a && a == b && wref_weak_count(o->other) >= 1 && n >= 1)
			atomic_fetch_add(&destroy_used_lib, 1);
		wref_release(a);
		wref_release(b);
	}
	wref_release(o->hold);
	atomic_fetch_add(&destroyed, 1);
}

static const wref_type obj_type = { .name = "obj", .destroy = obj_destroy };

static uint64_t id_hash(const void *p)
{
	return (uint64_t)((const struct obj *)p)->id * 1000003u;
}
static bool id_equal(const void *a, const void *b)
{
	return ((const struct obj *)a)->id == ((const struct obj *)b)->id;
}
static const wref_type hashed_type = {
	.name = "hashed", .destroy = obj_destroy,
	.hash = id_hash, .equal = id_equal,
};
static const wref_type noweak_type = {
	.name = "noweak", .flags = WREF_TYPE_NO_WEAK,
};

static struct obj *new_obj(const wref_type *t, int id)
{
	struct obj *o = wref_new(t, sizeof *o);
	ck_assert_ptr_nonnull(o);
	o->id = id;
	return o;
}

/* ---- callback bookkeeping ---------------------------------------------- */

#define MAXCB 64
static _Atomic int cb_runs[MAXCB];
static _Atomic int cb_bad[MAXCB];     /* something was wrong inside */
static pthread_t cb_thread[MAXCB];
static wref_ref *cb_other[MAXCB];     /* another ref that must read dead */

static int ret1(void *obj, void *arg)
{
	(void)obj;
	(void)arg;
	return 1;
}

static void cb_count(wref_ref *r, void *arg)
{
	int id = (int)(intptr_t)arg;
	cb_thread[id] = pthread_self();
	/* rule 2: the handle is valid here and reads dead */
	if (wref_ref_get(r) != NULL || wref_ref_alive(r))
		atomic_fetch_add(&cb_bad[id], 1);
	if (wref_ref_call(r, ret1, NULL) != -ENOENT)
		atomic_fetch_add(&cb_bad[id], 1);
	/* the other ref to the same referent already reads dead */
	if (cb_other[id] && (wref_ref_alive(cb_other[id]) ||
			     wref_ref_get(cb_other[id]) != NULL))
		atomic_fetch_add(&cb_bad[id], 1);
	atomic_fetch_add(&cb_runs[id], 1);
}

static void setup(void)
{
	atomic_store(&destroyed, 0);
	atomic_store(&destroy_saw_dead, 0);
	atomic_store(&destroy_used_lib, 0);
	for (int i = 0; i < MAXCB; i++) {
		atomic_store(&cb_runs[i], 0);
		atomic_store(&cb_bad[i], 0);
		cb_other[i] = NULL;
	}
}

static int pin_check(void *obj, void *arg)
{
	/* runs with the referent pinned */
	ck_assert_ptr_eq(obj, arg);
	ck_assert_uint_ge(wref_strong_count(obj), 2);
	return 42;
}

/* ---- tests -------------------------------------------------------------- */

START_TEST(test_ref_basics)
{
	struct wref_stats st0 = ct_stats();
	struct obj *o = new_obj(&obj_type, 1);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(ct_stats().blocks_live, st0.blocks_live + 1);
	ck_assert_uint_eq(wref_strong_count(o), 1); /* a weak ref is weak */
	ck_assert(wref_ref_alive(r));
	struct obj *p = wref_ref_get(r);
	ck_assert_ptr_eq(p, o);
	ck_assert_uint_eq(wref_strong_count(o), 2);
	wref_release(p);
	ck_assert_int_eq(wref_ref_call(r, pin_check, o), 42);
	ck_assert_uint_eq(wref_strong_count(o), 1);
	uint64_t h = wref_ref_hash(r);
	ck_assert_uint_eq(h, wref__hash_ptr(o)); /* identity hash */
	ck_assert(wref_ref_equal(r, r));

	wref_release(o);
	ck_assert_int_eq(destroyed, 1);
	/* rule 1: dead forever */
	for (int i = 0; i < 1000; i++)
		ck_assert_ptr_null(wref_ref_get(r));
	ck_assert(!wref_ref_alive(r));
	ck_assert_int_eq(wref_ref_call(r, pin_check, o), -ENOENT);
	ck_assert_uint_eq(wref_ref_hash(r), h); /* stable after death */
	ck_assert(wref_ref_equal(r, r));
	ck_assert_uint_eq(wref_strong_count(r), 1);
	wref_release(r);
	ct_assert_no_leak(st0);
}
END_TEST

/* docs/core.md, "Who frees what": a weakly referenced object's memory (and
 * with it the block's hold for the object) goes at its death, without a
 * grace period, so the last weak ref's release frees the block at once.
 * Before the side-table free, the object's hold was dropped only after a
 * grace period and blocks_live stayed +1 here until a flush. */
static atomic_int cb_dummy_count;
static void cb_dummy(wref_ref *r, void *arg)
{
	(void)r;
	atomic_fetch_add((atomic_int *)arg, 1);
}
START_TEST(test_mem_freed_at_death)
{
	struct wref_stats st0 = ct_stats();
	for (int i = 0; i < 100; i++) {
		struct obj *o = new_obj(&obj_type, i);
		wref_ref *r = wref_ref_new(o, NULL, NULL);
		wref_ref *c = wref_ref_new(o, cb_dummy, &cb_dummy_count);
		ck_assert_ptr_nonnull(r);
		ck_assert_ptr_nonnull(c);
		wref_release(c); /* cancelled: the object is alive */
		wref_release(o);
		ck_assert_ptr_null(wref_ref_get(r));
		wref_release(r);
		/* no flush, no grace period in between */
		ck_assert_uint_eq(ct_stats().blocks_live, st0.blocks_live);
	}
	ct_assert_no_leak(st0);
	ck_assert_int_eq(atomic_load(&cb_dummy_count), 0);
}
END_TEST

START_TEST(test_ref_hash_equal)
{
	struct obj *a = new_obj(&hashed_type, 7);
	struct obj *b = new_obj(&hashed_type, 7);
	struct obj *c = new_obj(&obj_type, 7);
	wref_ref *ra = wref_ref_new(a, NULL, NULL);
	wref_ref *ra2 = wref_ref_new(a, cb_count, (void *)(intptr_t)1);
	wref_ref *rb = wref_ref_new(b, NULL, NULL);
	wref_ref *rc = wref_ref_new(c, NULL, NULL);
	ck_assert_uint_eq(wref_ref_hash(ra), id_hash(a)); /* the type's hash */
	ck_assert_uint_eq(wref_ref_hash(ra2), id_hash(a));
	ck_assert_uint_eq(wref_ref_hash(rb), id_hash(b));
	ck_assert_uint_eq(wref_ref_hash(rc), wref__hash_ptr(c));
	/* rule 16: equal iff the same referent (callback or not) */
	ck_assert_ptr_ne(ra, ra2);
	ck_assert(wref_ref_equal(ra, ra2));
	ck_assert(wref_ref_equal(ra2, ra));
	ck_assert(!wref_ref_equal(ra, rb));
	ck_assert(!wref_ref_equal(ra, rc));
	ck_assert(wref_ref_equal(NULL, NULL));
	ck_assert(!wref_ref_equal(ra, NULL));
	ck_assert(!wref_ref_equal(NULL, ra));
	uint64_t h = wref_ref_hash(ra);
	wref_release(a);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert(wref_ref_equal(ra, ra2)); /* still, after death */
	ck_assert_uint_eq(wref_ref_hash(ra), h);
	ck_assert_uint_eq(wref_ref_hash(ra2), h);
	ck_assert_int_eq(cb_runs[1], 1);
	wref_release(ra);
	wref_release(ra2);
	wref_release(rb);
	wref_release(rc);
	wref_release(b);
	wref_release(c);
}
END_TEST

START_TEST(test_shared_refs)
{
	struct wref_stats st0 = ct_stats();
	struct obj *o = new_obj(&obj_type, 1);
	/* rule 3: callback-less refs are shared, retained once more */
	wref_ref *r1 = wref_ref_new(o, NULL, NULL);
	wref_ref *r2 = wref_ref_new(o, NULL, NULL);
	ck_assert_ptr_nonnull(r1);
	ck_assert_ptr_eq(r1, r2);
	ck_assert_uint_eq(wref_strong_count(r1), 2);
	/* rule 16: the shared ref counts once */
	ck_assert_uint_eq(wref_weak_count(o), 1);
	wref_ref *c1 = wref_ref_new(o, cb_count, (void *)(intptr_t)1);
	wref_ref *c2 = wref_ref_new(o, cb_count, (void *)(intptr_t)2);
	ck_assert_ptr_ne(c1, r1);
	ck_assert_ptr_ne(c1, c2);
	ck_assert_uint_eq(wref_weak_count(o), 3);

	/* getweakrefs: retained refs, total count */
	wref_ref *out[8] = { 0 };
	ck_assert_uint_eq(wref_weak_refs(o, out, 8), 3);
	int seen_r = 0, seen_c1 = 0, seen_c2 = 0;
	for (int i = 0; i < 3; i++) {
		seen_r += out[i] == r1;
		seen_c1 += out[i] == c1;
		seen_c2 += out[i] == c2;
	}
	ck_assert_int_eq(seen_r + seen_c1 + seen_c2, 3);
	ck_assert_int_eq(seen_r * seen_c1 * seen_c2, 1);
	ck_assert_uint_eq(wref_strong_count(r1), 3);
	ck_assert_uint_eq(wref_strong_count(c1), 2);
	for (int i = 0; i < 3; i++)
		wref_release(out[i]);
	ck_assert_uint_eq(wref_weak_refs(o, out, 1), 3); /* total > cap */
	ck_assert_ptr_nonnull(out[0]);
	wref_release(out[0]);
	ck_assert_uint_eq(wref_weak_refs(o, NULL, 0), 3);

	wref_release(r1);
	ck_assert_uint_eq(wref_weak_count(o), 3); /* r2 is the same handle */
	wref_release(r2);
	ck_assert_uint_eq(wref_weak_count(o), 2);
	wref_release(c2);
	ck_assert_uint_eq(wref_weak_count(o), 1);
	/* a new shared ref after the old one went */
	wref_ref *r3 = wref_ref_new(o, NULL, NULL);
	ck_assert_ptr_nonnull(r3);
	ck_assert_uint_eq(wref_strong_count(r3), 1);
	ck_assert_uint_eq(wref_weak_count(o), 2);
	ck_assert_ptr_eq(wref_ref_new(o, NULL, NULL), r3);
	wref_release(r3);
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 1);
	ck_assert_int_eq(cb_runs[2], 0); /* cancelled */
	ck_assert_int_eq(cb_bad[1], 0);
	wref_release(c1);
	wref_release(r3);
	ct_assert_no_leak(st0);
}
END_TEST

START_TEST(test_no_weak)
{
	struct wref_stats st0 = ct_stats();
	void *o = wref_new(&noweak_type, 8);
	errno = 0;
	ck_assert_ptr_null(wref_ref_new(o, NULL, NULL));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_ref_new(o, cb_count, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(ct_stats().blocks_live, st0.blocks_live);
	ck_assert_uint_eq(ct_stats().objects_live, st0.objects_live + 1);
	ck_assert_uint_eq(wref_weak_count(o), 0);
	ck_assert_uint_eq(wref_weak_refs(o, NULL, 0), 0);
	wref_release(o);
	ct_assert_no_leak(st0);
}
END_TEST

/* wref_ref_get tells a shared handle from a callback ref by bit 3 of its
 * address (internal.h wref__ref_is_shared): on objects of many payload
 * sizes, both block layouts (hashed types get the larger one) and refs
 * made in either order, every handle upgrades to its own object, then
 * reads dead */
START_TEST(test_handle_kinds_by_address)
{
	struct wref_stats st0 = ct_stats();
	enum { N = 96 };
	void *o[N];
	wref_ref *sh[N], *cr[N];
	for (int i = 0; i < N; i++) {
		const wref_type *t = i % 3 ? &obj_type : &hashed_type;
		o[i] = wref_new(t, sizeof(struct obj) + (size_t)(i % 7) * 8);
		ck_assert_ptr_nonnull(o[i]);
		if (i % 2) {
			sh[i] = wref_ref_new(o[i], NULL, NULL);
			cr[i] = wref_ref_new(o[i], cb_dummy, &cb_dummy_count);
		} else {
			cr[i] = wref_ref_new(o[i], cb_dummy, &cb_dummy_count);
			sh[i] = wref_ref_new(o[i], NULL, NULL);
		}
		ck_assert_ptr_nonnull(sh[i]);
		ck_assert_ptr_nonnull(cr[i]);
		ck_assert_uint_eq((uintptr_t)sh[i] & 15, 8);
		ck_assert_uint_eq((uintptr_t)cr[i] & 15, 0);
	}
	for (int i = 0; i < N; i++) {
		void *a = wref_ref_get(sh[i]), *b = wref_ref_get(cr[i]);
		ck_assert_ptr_eq(a, o[i]);
		ck_assert_ptr_eq(b, o[i]);
		wref_release(a);
		wref_release(b);
	}
	int runs0 = atomic_load(&cb_dummy_count);
	for (int i = 0; i < N; i++)
		wref_release(o[i]);
	wref_flush();
	ck_assert_int_eq(atomic_load(&cb_dummy_count), runs0 + N);
	for (int i = 0; i < N; i++) {
		ck_assert_ptr_null(wref_ref_get(sh[i]));
		ck_assert_ptr_null(wref_ref_get(cr[i]));
		wref_release(sh[i]);
		wref_release(cr[i]);
	}
	ct_assert_no_leak(st0);
}
END_TEST

/* the shared handle lives inside the control block (docs/core.md) and
 * cannot itself be weakly referenced, as Python's weakref.ref objects;
 * a callback ref can be */
START_TEST(test_weak_ref_to_refs)
{
	struct wref_stats st0 = ct_stats();
	struct obj *o = new_obj(&obj_type, 1);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	errno = 0;
	ck_assert_ptr_null(wref_ref_new(r, NULL, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(wref_ref_new(r, cb_dummy, &cb_dummy_count));
	ck_assert_int_eq(errno, EINVAL);
	wref_ref *c = wref_ref_new(o, cb_dummy, &cb_dummy_count);
	wref_ref *rc = wref_ref_new(c, NULL, NULL);
	ck_assert_ptr_nonnull(rc);
	ck_assert_ptr_eq(wref_ref_get(rc), c);
	wref_release(c); /* the ref the upgrade gave */
	wref_release(c); /* the callback ref dies: cancelled */
	ck_assert_ptr_null(wref_ref_get(rc));
	wref_release(rc);
	ck_assert(wref_ref_alive(r));
	wref_release(r);
	/* released and made again: the same handle, live again */
	wref_ref *r2 = wref_ref_new(o, NULL, NULL);
	ck_assert_ptr_eq(r2, r);
	ck_assert_uint_eq(wref_weak_count(o), 1);
	wref_release(o);
	ck_assert(!wref_ref_alive(r2));
	wref_release(r2);
	ct_assert_no_leak(st0);
	ck_assert_int_eq(atomic_load(&cb_dummy_count), 0);
}
END_TEST

/* issue 18: an object's first callback ref is born inside its block's
 * allocation (one allocation, one free), at 16-aligned offset 64 (80 for
 * a by-value type's block); a later one is its own allocation.  Every
 * release order of the embedded ref against its referent's death: before
 * it (cancelled), after it and before the callback (still runs), inside
 * the callback, long after it; and the embedded ref weakly referenced
 * itself.  Nothing leaks, the block lives until the last of them. */
static void cb_release(wref_ref *r, void *arg)
{
	cb_count(r, arg);
	wref_release(r); /* the user's ref, inside its callback */
}

static bool ref_embedded_in(wref_ref *r, void *o)
{
	struct wref__cb *cb = wref__cb_peek(wref__hdr(o));
	size_t off = wref__cb_flags(cb) & WREF_CB_BYVAL ? 96 : 64;
	return (char *)wref__hdr(r) == (char *)cb + off;
}

START_TEST(test_first_callback_ref_embedded)
{
	struct wref_stats st0 = ct_stats();
	for (int order = 0; order < 5; order++) {
		for (int byval = 0; byval < 2; byval++) {
			const wref_type *t = byval ? &hashed_type : &obj_type;
			struct obj *o = new_obj(t, order);
			int id = 2 * order + byval + 1;
			wref_ref *r = wref_ref_new(o, order == 2 ? cb_release
					: cb_count, (void *)(intptr_t)id);
			ck_assert_ptr_nonnull(r);
			ck_assert(ref_embedded_in(r, o));
			wref_ref *k = wref_ref_new(o, cb_count,
					(void *)(intptr_t)(id + 20));
			ck_assert(!ref_embedded_in(k, o));
			ck_assert_uint_eq(wref_weak_count(o), 2);
			ck_assert_ptr_eq(wref_ref_get(r), o);
			wref_release(o);
			wref_ref *rr = NULL;
			if (order == 4) { /* a weak ref to the embedded ref */
				rr = wref_ref_new(r, NULL, NULL);
				ck_assert_ptr_nonnull(rr);
			}
			if (order == 0) /* before death: cancelled */
				wref_release(r);
			wref_release(o); /* dies */
			if (order == 1) /* before its callback ran */
				wref_release(r);
			ck_assert_int_eq(wref_flush(), 0);
			ck_assert_int_eq(cb_runs[id], order == 0 ? 0 : 1);
			ck_assert_int_eq(cb_bad[id], 0);
			ck_assert_int_eq(cb_runs[id + 20], 1);
			wref_release(k);
			if (order >= 3) { /* kept after its callback */
				ck_assert(!wref_ref_alive(r));
				ck_assert_ptr_null(wref_ref_get(r));
				if (rr)
					ck_assert_ptr_eq(wref_ref_get(rr), r);
				wref_release(rr ? r : NULL); /* the upgrade */
				wref_release(r);
				if (rr) {
					ck_assert_ptr_null(wref_ref_get(rr));
					wref_release(rr);
				}
			}
		}
	}
	ct_assert_no_leak(st0);
}
END_TEST

/* issue 18: a death whose block only ever had callback refs' watches
 * collects them without an RCU read-side section; any other watch (a
 * container entry) marks the block for one, for good */
START_TEST(test_rcu_watch_flag)
{
	struct obj *o = new_obj(&obj_type, 1);
	wref_ref *a = wref_ref_new(o, cb_count, (void *)(intptr_t)1);
	wref_ref *b = wref_ref_new(o, cb_count, (void *)(intptr_t)2);
	struct wref__cb *cb = wref__cb_peek(wref__hdr(o));
	ck_assert(!(wref__cb_flags(cb) & WREF_CB_RCU_WATCH));
	wref_set *s = wref_set_new(NULL);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(wref_set_add(s, o), 0);
	ck_assert(wref__cb_flags(cb) & WREF_CB_RCU_WATCH);
	ck_assert_int_eq(wref_set_discard(s, o), 0);
	ck_assert(wref__cb_flags(cb) & WREF_CB_RCU_WATCH);
	ck_assert_int_eq(wref_set_add(s, o), 0);
	wref_release(o); /* its entry and both callbacks go */
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(wref_set_len(s), 0);
	ck_assert_int_eq(cb_runs[1], 1);
	ck_assert_int_eq(cb_runs[2], 1);
	ck_assert_int_eq(cb_bad[1] + cb_bad[2], 0);
	wref_release(a);
	wref_release(b);
	wref_release(s);
}
END_TEST

/* the death of an object whose block only ever had its embedded callback
 * ref's watch fires it without the block's lock (object.c kill_lone,
 * picked by the block's flags: no LATE_WATCH, no RCU_WATCH, no entry),
 * and such a block's last strong release tries one CAS 1 -> DEAD (the
 * header word's WREF_W_SOLO hint).  The hint and the flags are what pick
 * those paths, so they are asserted; then every release order of the ref
 * against the death, and the last strong ref an upgrade's, still give the
 * callback exactly once iff the ref is held at death, and nothing leaks.
 * A second callback ref (a late watch), a shared handle first, or a
 * container entry first leave the locked death and the fetch_sub release. */
START_TEST(test_lone_death)
{
	struct wref_stats st0 = ct_stats();
	for (int order = 0; order < 5; order++) {
		struct obj *o = new_obj(&obj_type, order);
		int id = order + 1;
		wref_ref *r = wref_ref_new(o, order == 2 ? cb_release
						      : cb_count,
					   (void *)(intptr_t)id);
		ck_assert_ptr_nonnull(r);
		struct wref__hdr *h = wref__hdr(o);
		struct wref__cb *cb = wref__cb_peek(h);
		ck_assert(atomic_load(&h->word) & WREF_W_SOLO);
		ck_assert_uint_eq(wref__cb_flags(cb) &
				  (WREF_CB_LATE_WATCH | WREF_CB_RCU_WATCH |
				   WREF_CB_EMBED), 0);
		/* an upgrade and its release, not the last: the SOLO guess
		 * reads 2 and takes the fetch_sub */
		ck_assert_ptr_eq(wref_ref_get(r), o);
		ck_assert_uint_eq(wref_strong_count(o), 2);
		wref_release(o);
		ck_assert_uint_eq(wref_strong_count(o), 1);
		ck_assert_int_eq(destroyed, order);
		if (order == 0) /* before death: cancelled */
			wref_release(r);
		if (order == 3) { /* the last strong ref is an upgrade's */
			void *u = wref_ref_get(r);
			ck_assert_ptr_eq(u, o);
			wref_release(o);
			ck_assert_int_eq(destroyed, order);
			ck_assert_uint_eq(wref_strong_count(u), 1);
			wref_release(u); /* dies: CAS 1 -> DEAD */
		} else {
			wref_release(o); /* dies */
		}
		ck_assert_int_eq(destroyed, order + 1);
		if (order == 1) /* after death, before its callback ran */
			wref_release(r);
		ck_assert_int_eq(wref_flush(), 0);
		ck_assert_int_eq(cb_runs[id], order == 0 ? 0 : 1);
		ck_assert_int_eq(cb_bad[id], 0);
		if (order >= 3) { /* kept after its callback */
			ck_assert(!wref_ref_alive(r));
			ck_assert_ptr_null(wref_ref_get(r));
			wref_release(r);
		}
	}

	/* the ref weakly referenced itself: its count moves to a block of
	 * its own, and the death pins it under the lock instead (the lone
	 * path never reads a ref's own block: it may be freed) */
	{
		struct obj *q = new_obj(&obj_type, 20);
		wref_ref *r = wref_ref_new(q, cb_count, (void *)(intptr_t)20);
		wref_ref *rr = wref_ref_new(r, NULL, NULL);
		ck_assert_ptr_nonnull(rr);
		ck_assert(atomic_load(&wref__hdr(r)->word) & WREF_W_CB);
		ck_assert(atomic_load(&wref__hdr(q)->word) & WREF_W_SOLO);
		wref_release(q);
		ck_assert_int_eq(wref_flush(), 0);
		ck_assert_int_eq(cb_runs[20], 1);
		ck_assert_int_eq(cb_bad[20], 0);
		ck_assert_ptr_eq(wref_ref_get(rr), r);
		wref_release(r); /* the upgrade */
		wref_release(r);
		ck_assert_ptr_null(wref_ref_get(rr));
		wref_release(rr);
	}

	/* a later second callback ref: the locked death fires both */
	struct obj *o = new_obj(&obj_type, 10);
	wref_ref *a = wref_ref_new(o, cb_count, (void *)(intptr_t)10);
	struct wref__cb *cb = wref__cb_peek(wref__hdr(o));
	ck_assert(!(wref__cb_flags(cb) & WREF_CB_LATE_WATCH));
	wref_ref *b = wref_ref_new(o, cb_count, (void *)(intptr_t)11);
	ck_assert(wref__cb_flags(cb) & WREF_CB_LATE_WATCH);
	wref_release(b); /* cancelled: the flag stays */
	ck_assert(wref__cb_flags(cb) & WREF_CB_LATE_WATCH);
	b = wref_ref_new(o, cb_count, (void *)(intptr_t)12);
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[10], 1);
	ck_assert_int_eq(cb_runs[11], 0);
	ck_assert_int_eq(cb_runs[12], 1);
	ck_assert_int_eq(cb_bad[10] + cb_bad[12], 0);
	wref_release(a);
	wref_release(b);

	/* blocks not made for a callback ref carry no hint */
	o = new_obj(&obj_type, 13);
	wref_ref *sh = wref_ref_new(o, NULL, NULL);
	ck_assert(!(atomic_load(&wref__hdr(o)->word) & WREF_W_SOLO));
	a = wref_ref_new(o, cb_count, (void *)(intptr_t)13);
	ck_assert(wref__cb_flags(wref__cb_peek(wref__hdr(o))) &
		  WREF_CB_LATE_WATCH);
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[13], 1);
	wref_release(a);
	wref_release(sh);
	wref_valmap *m = wref_valmap_new(NULL);
	ck_assert_ptr_nonnull(m);
	o = new_obj(&obj_type, 14);
	ck_assert_int_eq(wref_valmap_set(m, "k", 1, o), 0);
	ck_assert(!(atomic_load(&wref__hdr(o)->word) & WREF_W_SOLO));
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref_release(m);
	ct_assert_no_leak(st0);
}
END_TEST

START_TEST(test_null_args)
{
	errno = 0;
	ck_assert_ptr_null(wref_ref_new(NULL, NULL, NULL));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_ref_new(NULL, cb_count, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(wref_ref_get(NULL));
	ck_assert(!wref_ref_alive(NULL));
	ck_assert_int_eq(wref_ref_call(NULL, pin_check, NULL), -EINVAL);
	ck_assert_uint_eq(wref_ref_hash(NULL), 0);
	struct obj *o = new_obj(&obj_type, 1);
	wref_ref *r = wref_ref_new(o, NULL, NULL);
	ck_assert_int_eq(wref_ref_call(r, NULL, NULL), -EINVAL);
	wref_release(o);
	ck_assert_int_eq(wref_ref_call(r, NULL, NULL), -EINVAL);
	wref_release(r);
}
END_TEST

/* ENOMEM: the n-th allocation fails, for every n until the call succeeds;
 * every failure sets ENOMEM and leaks nothing */
static void enomem_loop(bool with_cb, bool existing_block)
{
	struct wref_stats st0 = ct_stats();
	int fails = 0;
	for (long n = 0;; n++) {
		struct obj *o = new_obj(&obj_type, 1);
		wref_ref *pre = NULL;
		if (existing_block)
			pre = wref_ref_new(o, cb_count, (void *)(intptr_t)3);
		wref__alloc_fail_after(n);
		errno = 0;
		wref_ref *r = wref_ref_new(o, with_cb ? cb_count : NULL,
					   (void *)(intptr_t)1);
		int err = errno;
		wref__alloc_fail_after(-1);
		if (!r) {
			ck_assert_int_eq(err, ENOMEM);
			fails++;
			wref_release(pre);
			wref_release(o);
			ck_assert_int_eq(wref_flush(), 0);
			ck_assert_int_eq(cb_runs[1], 0);
			continue;
		}
		/* the successful one works */
		ck_assert(wref_ref_alive(r));
		ck_assert_uint_eq(wref_weak_count(o), existing_block ? 2 : 1);
		wref_release(o);
		ck_assert_int_eq(wref_flush(), 0);
		ck_assert_int_eq(cb_runs[1], with_cb ? 1 : 0);
		ck_assert(!wref_ref_alive(r));
		wref_release(r);
		wref_release(pre);
		break;
	}
	/* a shared ref on an existing block allocates nothing: its handle is
	 * the block (docs/core.md) */
	ck_assert_int_ge(fails, with_cb || !existing_block ? 1 : 0);
	ct_assert_no_leak(st0);
}

START_TEST(test_enomem_shared)
{
	enomem_loop(false, false);
}
END_TEST

START_TEST(test_enomem_callback)
{
	enomem_loop(true, false);
}
END_TEST

START_TEST(test_enomem_second_ref)
{
	enomem_loop(true, true);
	setup();
	enomem_loop(false, true);
}
END_TEST

/* ---- callbacks (rule 2) ------------------------------------------------- */

START_TEST(test_callback_once)
{
	struct wref_stats st0 = ct_stats();
	struct obj *o = new_obj(&obj_type, 1);
	wref_ref *r = wref_ref_new(o, cb_count, (void *)(intptr_t)1);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 0); /* not before death */
	wref_release(o);
	/* reads dead as soon as the release returns */
	ck_assert(!wref_ref_alive(r));
	ck_assert_ptr_null(wref_ref_get(r));
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 1);
	ck_assert_int_eq(cb_bad[1], 0);
	/* on the executor, not on the releasing thread */
	ck_assert(!pthread_equal(cb_thread[1], pthread_self()));
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 1);
	wref_release(r);
	struct wref_stats st1 = ct_stats();
	ck_assert_uint_ge(st1.callbacks_queued, st0.callbacks_queued + 1);
	ck_assert_uint_ge(st1.callbacks_run, st0.callbacks_run + 1);
	ct_assert_no_leak(st0);
}
END_TEST

START_TEST(test_callback_cancel)
{
	struct obj *o = new_obj(&obj_type, 1);
	wref_ref *r = wref_ref_new(o, cb_count, (void *)(intptr_t)1);
	wref_ref *k = wref_ref_new(o, cb_count, (void *)(intptr_t)2);
	wref_release(r); /* before death: cancelled */
	ck_assert_uint_eq(wref_weak_count(o), 1);
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 0);
	ck_assert_int_eq(cb_runs[2], 1);
	wref_release(k);
}
END_TEST

START_TEST(test_callback_ref_released_after_death)
{
	/* held at death, released before the callback ran: still runs once,
	 * with a valid handle (the library holds it) */
	struct obj *o = new_obj(&obj_type, 1);
	wref_ref *r = wref_ref_new(o, cb_count, (void *)(intptr_t)1);
	wref_release(o);
	wref_release(r);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 1);
	ck_assert_int_eq(cb_bad[1], 0);
}
END_TEST

START_TEST(test_two_callbacks_other_dead)
{
	struct obj *o = new_obj(&obj_type, 1);
	wref_ref *r1 = wref_ref_new(o, cb_count, (void *)(intptr_t)1);
	wref_ref *r2 = wref_ref_new(o, cb_count, (void *)(intptr_t)2);
	wref_ref *plain = wref_ref_new(o, NULL, NULL);
	cb_other[1] = r2;
	cb_other[2] = plain;
	wref_release(o);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 1);
	ck_assert_int_eq(cb_runs[2], 1);
	ck_assert_int_eq(cb_bad[1], 0);
	ck_assert_int_eq(cb_bad[2], 0);
	wref_release(r1);
	wref_release(r2);
	wref_release(plain);
}
END_TEST

/* rule 8: a callback creates objects and refs, releases refs, and releases
 * the last strong ref of other objects (with their own callbacks) */
static void *busy_victim;
static _Atomic int busy_ok;
static void cb_busy(wref_ref *r, void *arg)
{
	(void)arg;
	struct obj *n = new_obj(&obj_type, 99);
	wref_ref *a = wref_ref_new(n, NULL, NULL);
	wref_ref *b = wref_ref_new(n, cb_count, (void *)(intptr_t)5);
	wref_ref *c = wref_ref_new(busy_victim, NULL, NULL);
	bool ok = a && b && c && wref_weak_count(n) == 2 &&
		  wref_ref_alive(c) && !wref_ref_alive(r);
	/* the callback holds its own ref: releasing an extra one is fine */
	wref_retain(r);
	wref_release(r);
	wref_release(busy_victim); /* last strong ref: its callback queues */
	ok = ok && !wref_ref_alive(c);
	wref_release(n); /* dies here: b's callback queues */
	ok = ok && !wref_ref_alive(a);
	wref_release(a);
	wref_release(b);
	wref_release(c);
	if (ok)
		atomic_store(&busy_ok, 1);
	atomic_fetch_add(&cb_runs[0], 1);
}

START_TEST(test_callback_uses_library)
{
	struct wref_stats st0 = ct_stats();
	struct obj *o = new_obj(&obj_type, 1);
	busy_victim = new_obj(&obj_type, 2);
	wref_ref *vr = wref_ref_new(busy_victim, cb_count, (void *)(intptr_t)4);
	wref_ref *r = wref_ref_new(o, cb_busy, NULL);
	wref_release(o);
	/* the callbacks the first one queued run after it: flush until the
	 * queue is quiet */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[0], 1);
	ck_assert_int_eq(busy_ok, 1);
	ck_assert_int_eq(cb_runs[4], 1);
	ck_assert_int_eq(cb_runs[5], 1); /* its ref was held at n's death */
	ck_assert_int_eq(cb_bad[5], 0);
	ck_assert_int_eq(cb_bad[4], 0);
	ck_assert_int_eq(destroyed, 3);
	wref_release(vr);
	wref_release(r);
	ct_assert_no_leak(st0);
}
END_TEST

START_TEST(test_destroy_self_ref_dead)
{
	/* rule 1: inside destroy, a weak ref to the dying object reads dead */
	struct obj *o = new_obj(&obj_type, 1);
	o->self = wref_ref_new(o, NULL, NULL);
	struct obj *o2 = new_obj(&obj_type, 2);
	o2->self = wref_ref_new(o2, cb_count, (void *)(intptr_t)1);
	wref_release(o);
	wref_release(o2);
	ck_assert_int_eq(destroyed, 2);
	ck_assert_int_eq(destroy_saw_dead, 2);
	ck_assert_int_eq(wref_flush(), 0);
	/* o2's ref was released by destroy: held at death, so it ran */
	ck_assert_int_eq(cb_runs[1], 1);
}
END_TEST

START_TEST(test_destroy_uses_library)
{
	struct wref_stats st0 = ct_stats();
	struct obj *other = new_obj(&obj_type, 3);
	wref_ref *keep = wref_ref_new(other, NULL, NULL);
	struct obj *victim = new_obj(&obj_type, 4);
	wref_ref *vr = wref_ref_new(victim, cb_count, (void *)(intptr_t)1);
	struct obj *o = new_obj(&obj_type, 1);
	o->other = other;
	o->hold = victim; /* destroy releases victim's last ref */
	wref_release(o);
	ck_assert_int_eq(destroy_used_lib, 1);
	ck_assert_int_eq(destroyed, 2);
	ck_assert(!wref_ref_alive(vr));
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 1);
	ck_assert_uint_eq(wref_weak_count(other), 1);
	wref_release(keep);
	wref_release(vr);
	wref_release(other);
	ct_assert_no_leak(st0);
}
END_TEST

/*
 * A weak ref to the object whose destroy is running, made inside destroy
 * (resurrection attempt, GLib MR 3316): must read dead, leak nothing.
 * Regression test (failed before 2b23c7c): wref_ref_new() on a dead
 * object without a control block
 * allocates one (wref__cb_get does not check DEAD); destroy_and_free()
 * peeked the block before destroy ran, so it frees the memory at once
 * without wref__cb_kill and without the grace period: the block leaks
 * (blocks_live stays 1) and its obj pointer dangles (use-after-free in a
 * later wref_ref_get/alive).  Expected: NULL + ENOENT/EINVAL, or a ref
 * that reads dead with the block freed normally.
 */
static _Atomic int late_ok;
static void late_destroy(void *p)
{
	wref_ref *r = wref_ref_new(p, NULL, NULL);
	wref_ref *c = wref_ref_new(p, cb_count, (void *)(intptr_t)1);
	if ((!r || !wref_ref_alive(r)) && (!c || !wref_ref_alive(c)) &&
	    (!r || !wref_ref_get(r)))
		atomic_store(&late_ok, 1);
	wref_release(r);
	wref_release(c);
}
static const wref_type late_type = { .name = "late", .destroy = late_destroy };

START_TEST(test_ref_new_in_own_destroy)
{
	struct wref_stats st0 = ct_stats();
	void *o = wref_new(&late_type, 8);
	wref_release(o);
	ck_assert_int_eq(late_ok, 1);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 0);
	ct_assert_no_leak(st0);
}
END_TEST

/* rule 10: threads never register; short-lived threads that upgraded (and
 * so registered with RCU) do not hold up grace periods after they exit */
static wref_ref *churn_ref;
static void *churn_thread(void *p)
{
	(void)p;
	for (int i = 0; i < 10; i++) {
		void *o = wref_ref_get(churn_ref);
		if (!o)
			return (void *)1;
		wref_release(o);
	}
	return NULL;
}

START_TEST(test_thread_churn_no_registration)
{
	struct wref_stats st0 = ct_stats();
	struct obj *o = new_obj(&obj_type, 1);
	churn_ref = wref_ref_new(o, cb_count, (void *)(intptr_t)1);
	int n = ct_tsan() ? 50 : 300;
	for (int i = 0; i < n; i++) {
		pthread_t t;
		void *ret = (void *)2;
		ck_assert_int_eq(pthread_create(&t, NULL, churn_thread, NULL), 0);
		pthread_join(t, &ret);
		ck_assert_ptr_null(ret);
	}
	wref_release(o); /* memory freed after a grace period */
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs[1], 1);
	wref_release(churn_ref);
	/* waits for the grace period: exited readers must not block it */
	ct_assert_no_leak(st0);
}
END_TEST

/* rule 8 / internal rule: no user code inside an RCU read-side section (it
 * may release a container whose teardown waits for a grace period) */
static _Atomic int in_rcu_seen, user_runs;
static void rcu_probe(void)
{
	if (urcu_bp_read_ongoing())
		atomic_fetch_add(&in_rcu_seen, 1);
	atomic_fetch_add(&user_runs, 1);
}
static void probe_destroy(void *p)
{
	struct obj *o = p;
	rcu_probe();
	wref_release(o->hold);
}
static const wref_type probe_type = { .name = "probe",
				      .destroy = probe_destroy };
static void probe_cb(wref_ref *r, void *arg)
{
	(void)r;
	rcu_probe();
	wref_release(arg); /* the last ref of another object: its destroy */
}

static void probe_scenario(void)
{
	/* a -> b (held), refs with callbacks on both; c is released by a's
	 * callback */
	struct obj *a = new_obj(&probe_type, 1);
	struct obj *b = new_obj(&probe_type, 2);
	struct obj *c = new_obj(&probe_type, 3);
	a->hold = b;
	wref_ref *ra = wref_ref_new(a, probe_cb, c);
	wref_ref *rb = wref_ref_new(b, probe_cb, NULL);
	wref_ref *rc = wref_ref_new(c, NULL, NULL);
	wref_release(a);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(wref_flush(), 0);
	wref_release(ra);
	wref_release(rb);
	wref_release(rc);
}

START_TEST(test_user_code_outside_rcu)
{
	probe_scenario();
	ck_assert_int_eq(user_runs, 5); /* 3 destroys, 2 callbacks */
	wref_config inl = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&inl), 0);
	probe_scenario();
	ck_assert_int_eq(user_runs, 10);
	ck_assert_int_eq(wref_init(NULL), 0);
	ck_assert_int_eq(in_rcu_seen, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ref");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_ref_basics);
	tcase_add_test(tc, test_mem_freed_at_death);
	tcase_add_test(tc, test_ref_hash_equal);
	tcase_add_test(tc, test_shared_refs);
	tcase_add_test(tc, test_no_weak);
	tcase_add_test(tc, test_weak_ref_to_refs);
	tcase_add_test(tc, test_handle_kinds_by_address);
	tcase_add_test(tc, test_first_callback_ref_embedded);
	tcase_add_test(tc, test_rcu_watch_flag);
	tcase_add_test(tc, test_lone_death);
	tcase_add_test(tc, test_null_args);
	tcase_add_test(tc, test_enomem_shared);
	tcase_add_test(tc, test_enomem_callback);
	tcase_add_test(tc, test_enomem_second_ref);
	tcase_add_test(tc, test_callback_once);
	tcase_add_test(tc, test_callback_cancel);
	tcase_add_test(tc, test_callback_ref_released_after_death);
	tcase_add_test(tc, test_two_callbacks_other_dead);
	tcase_add_test(tc, test_callback_uses_library);
	tcase_add_test(tc, test_destroy_self_ref_dead);
	tcase_add_test(tc, test_destroy_uses_library);
	tcase_add_test(tc, test_thread_churn_no_registration);
	tcase_add_test(tc, test_user_code_outside_rcu);
	/* regression: failed on 16a6bb7/47909bd, fixed in 2b23c7c */
	tcase_add_test(tc, test_ref_new_in_own_destroy);
	suite_add_tcase(s, tc);
	return ct_run_suite(s);
}
