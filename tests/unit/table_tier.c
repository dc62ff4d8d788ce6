/*
 * unit/table_tier.c - unit tests of the table layer (lib/table.h) and of
 * the retention tier (lib/tier.h) on their own (issue 14 item 5), through
 * a minimal test container instead of the public valmap/keymap/set:
 *
 *  - the table: add_unique keeps the first entry under a key, add_replace
 *    and replace hand back the replaced entry, unlink succeeds once, a
 *    user-side removal calls ops->forget and retires the entry, an
 *    object's death removes its entry without a forget, foreach visits the
 *    live entries with their objects pinned, skips entries removed since
 *    its snapshot and stops at a non-zero return, clear empties the table;
 *  - the tier: retention by time (the test clock, wref__clock_set), a
 *    touch refreshes an entry, retention by count (retain_max: least
 *    recently used first), forget drops the hold at once and refuses later
 *    touches (rule 17), kill releases everything on the executor.
 *
 * Run by make check and under TSan (the executor, the timer thread and the
 * tier's lock-free inbox are all real).
 */
#include "core_test.h"
#include "table.h"
#include "tier.h"

/* ---- test objects: record their deaths by id ----------------------------- */

static _Atomic uint32_t dead_mask; /* bit id: object id died */

struct val {
	unsigned id;
};

static void val_destroy(void *p)
{
	struct val *v = p;
	atomic_fetch_or(&dead_mask, 1u << v->id);
}

static const wref_type val_type = { .name = "val", .destroy = val_destroy };

static struct val *val_new(unsigned id)
{
	struct val *v = wref_new(&val_type, sizeof *v);
	ck_assert_ptr_nonnull(v);
	v->id = id;
	return v;
}

static bool is_dead(unsigned id)
{
	return atomic_load(&dead_mask) & (1u << id);
}

/* ---- the test container: a table, optionally a tier --------------------- */

struct tc {
	struct wref__table t; /* first: the payload starts with its table */
	struct wref__tier *tier;
};

struct tent {
	struct wref__entry e; /* first: the allocation starts with it */
	struct wref__tier_node r;
};

static _Atomic unsigned retired, forgotten;

static void tc_retire(struct wref__entry *e)
{
	atomic_fetch_add(&retired, 1);
	wref__entry_free_rcu(e);
}

static void tc_forget(struct wref__entry *e)
{
	/* the table is the container's first member (table.h) */
	struct tc *c = (struct tc *)(void *)wref__entry_table(e);
	atomic_fetch_add(&forgotten, 1);
	if (c->tier && e->cb)
		wref__tier_forget(c->tier, &((struct tent *)e)->r);
}

static const struct wref__table_ops tc_ops = {
	.match = wref__objkey_match,
	.retire = tc_retire,
	.forget = tc_forget,
};

static void tc_destroy(void *p)
{
	struct tc *c = p;
	if (c->tier)
		wref__tier_kill(c->tier);
	wref__table_fini(&c->t);
}

static const wref_type tc_type = { .name = "tc", .destroy = tc_destroy };

static struct tc *tc_new(uint64_t retain_ms, size_t retain_max)
{
	struct tc *c = wref__container_new(&tc_type, sizeof *c, NULL, 0,
					   &tc_ops);
	ck_assert_ptr_nonnull(c);
	if (retain_ms) {
		c->tier = wref__tier_new(retain_ms, retain_max);
		ck_assert_ptr_nonnull(c->tier);
	}
	return c;
}

static uint64_t key_of(const void *obj, struct wref__objkey *k)
{
	ck_assert_int_eq(wref__objkey_init(k, obj, false), 0);
	return wref__objkey_hash(k);
}

/* a new, armed, unlinked entry watching @obj (held by the caller) */
static struct tent *tent_new(struct tc *c, void *obj)
{
	struct wref__cb *cb = wref__key_cb(obj, false);
	ck_assert_ptr_nonnull(cb);
	struct tent *v = wref__alloc(sizeof *v);
	ck_assert_ptr_nonnull(v);
	wref__entry_init(&c->t, &v->e, cb);
	if (c->tier)
		wref__tier_node_init(&v->r, &v->e);
	wref__entry_arm(&v->e);
	return v;
}

/* add_unique of a new entry for @obj: the entry now under its key */
static struct wref__entry *tc_add(struct tc *c, void *obj, struct tent **mine)
{
	struct tent *v = tent_new(c, obj);
	struct wref__objkey k;
	uint64_t h = key_of(obj, &k);
	wref__rcu_lock();
	struct wref__entry *got = wref__entry_add_unique(&v->e, h, &k);
	wref__rcu_unlock();
	if (got != &v->e)
		wref__entry_discard(&v->e);
	else
		wref__table_grow_check(&c->t);
	if (mine)
		*mine = got == &v->e ? v : NULL;
	return got;
}

static struct wref__entry *tc_lookup(struct tc *c, const void *obj)
{
	struct wref__objkey k;
	uint64_t h = key_of(obj, &k);
	wref__rcu_lock();
	struct wref__entry *e = wref__table_lookup(&c->t, h, &k);
	wref__rcu_unlock();
	return e;
}

/* user-side removal of @obj's entry: true if we removed it */
static bool tc_del(struct tc *c, const void *obj)
{
	struct wref__objkey k;
	uint64_t h = key_of(obj, &k);
	wref__rcu_lock();
	struct wref__entry *e = wref__table_lookup(&c->t, h, &k);
	bool mine = e && wref__entry_unlink(&c->t, e);
	wref__rcu_unlock();
	if (mine)
		wref__entry_removed(e);
	return mine;
}

static void counters_reset(void)
{
	atomic_store(&dead_mask, 0);
	atomic_store(&retired, 0);
	atomic_store(&forgotten, 0);
}

/* ---- the table layer ------------------------------------------------------ */

START_TEST(table_add_unique_keeps_first)
{
	struct wref_stats start = ct_stats();
	counters_reset();
	struct tc *c = tc_new(0, 0);
	struct val *a = val_new(0);
	struct tent *v1, *v2;
	struct wref__entry *e1 = tc_add(c, a, &v1);
	ck_assert_ptr_eq(e1, &v1->e);
	ck_assert_uint_eq(wref__table_len(&c->t), 1);
	/* a second entry for the same key loses and is discarded unretired */
	ck_assert_ptr_eq(tc_add(c, a, &v2), e1);
	ck_assert_ptr_null(v2);
	ck_assert_uint_eq(wref__table_len(&c->t), 1);
	ck_assert_ptr_eq(tc_lookup(c, a), e1);
	ck_assert_uint_eq(atomic_load(&retired), 0);
	/* the entry pins nothing: the object dies with its last user ref */
	wref_release(a);
	ck_assert(is_dead(0));
	wref_release(c);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(atomic_load(&retired), 1);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(table_replace_hands_back_old)
{
	struct wref_stats start = ct_stats();
	counters_reset();
	struct tc *c = tc_new(0, 0);
	struct val *a = val_new(0);
	struct tent *v1;
	tc_add(c, a, &v1);
	/* add_replace: the old entry comes back, still ours to finish */
	struct tent *v3 = tent_new(c, a);
	struct wref__objkey k;
	uint64_t h = key_of(a, &k);
	wref__rcu_lock();
	struct wref__entry *old = wref__entry_add_replace(&v3->e, h, &k);
	wref__rcu_unlock();
	ck_assert_ptr_eq(old, &v1->e);
	ck_assert_uint_eq(atomic_load(&retired), 0);
	wref__entry_removed(old);
	ck_assert_uint_eq(atomic_load(&forgotten), 1);
	ck_assert_uint_eq(atomic_load(&retired), 1);
	ck_assert_uint_eq(wref__table_len(&c->t), 1);
	ck_assert_ptr_eq(tc_lookup(c, a), &v3->e);

	/* replace of the exact node: succeeds once; a second replace of the
	 * node already replaced fails and its new entry is discarded */
	struct tent *v4 = tent_new(c, a), *v5 = tent_new(c, a);
	wref__rcu_lock();
	bool r1 = wref__entry_replace(&v3->e, &v4->e, h, &k);
	bool r2 = wref__entry_replace(&v3->e, &v5->e, h, &k);
	wref__rcu_unlock();
	ck_assert(r1);
	ck_assert(!r2);
	wref__entry_discard(&v5->e);
	wref__entry_removed(&v3->e);
	ck_assert_uint_eq(atomic_load(&retired), 2);
	ck_assert_ptr_eq(tc_lookup(c, a), &v4->e);
	ck_assert_uint_eq(wref__table_len(&c->t), 1);
	wref_release(a);
	wref_release(c);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(atomic_load(&retired), 3);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(table_unlink_once)
{
	struct wref_stats start = ct_stats();
	counters_reset();
	struct tc *c = tc_new(0, 0);
	struct val *a = val_new(0);
	struct wref__entry *e = tc_add(c, a, NULL);
	/* hold the entry so that its memory outlives the removal */
	wref__entry_hold(e);
	wref__rcu_lock();
	bool first = wref__entry_unlink(&c->t, e);
	bool second = wref__entry_unlink(&c->t, e);
	wref__rcu_unlock();
	ck_assert(first);
	ck_assert(!second);
	ck_assert_uint_eq(wref__table_len(&c->t), 0);
	wref__entry_removed(e);
	ck_assert_uint_eq(atomic_load(&forgotten), 1);
	ck_assert_uint_eq(atomic_load(&retired), 0); /* our hold */
	ck_assert_ptr_null(tc_lookup(c, a));
	ck_assert(!tc_del(c, a));
	wref__entry_put(e);
	ck_assert_uint_eq(atomic_load(&retired), 1);
	ck_assert(!is_dead(0));
	wref_release(a);
	wref_release(c);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(table_death_removes_entry)
{
	struct wref_stats start = ct_stats();
	counters_reset();
	struct tc *c = tc_new(0, 0);
	struct val *a = val_new(0), *b = val_new(1);
	tc_add(c, a, NULL);
	tc_add(c, b, NULL);
	ck_assert_uint_eq(wref__table_len(&c->t), 2);
	wref_release(a);
	ck_assert(is_dead(0));
	ck_assert_int_eq(wref_flush(), 0);
	/* the death fired the watch: the entry is gone, no forget (that is
	 * for user-side removals only) */
	ck_assert_uint_eq(wref__table_len(&c->t), 1);
	ck_assert_uint_eq(atomic_load(&retired), 1);
	ck_assert_uint_eq(atomic_load(&forgotten), 0);
	ck_assert_ptr_nonnull(tc_lookup(c, b));
	ck_assert(tc_del(c, b));
	ck_assert_uint_eq(atomic_load(&forgotten), 1);
	ck_assert_uint_eq(atomic_load(&retired), 2);
	wref_release(b);
	wref_release(c);
	ct_assert_no_leak(start);
}
END_TEST

enum { NV = 5 };

struct walk {
	struct val *expect[NV];
	unsigned seen;     /* bit per id */
	int stop_after;    /* return 7 after this many visits (0: never) */
	int visits;
};

static int visit(const struct wref__pin *p, void *ctx)
{
	struct walk *w = ctx;
	struct val *v = p->obj;
	ck_assert_ptr_eq(w->expect[v->id], v);
	ck_assert(!is_dead(v->id));
	ck_assert(!(w->seen & (1u << v->id)));
	w->seen |= 1u << v->id;
	w->visits++;
	return w->stop_after && w->visits == w->stop_after ? 7 : 0;
}

START_TEST(table_foreach_live_and_stop)
{
	struct wref_stats start = ct_stats();
	counters_reset();
	struct tc *c = tc_new(0, 0);
	struct walk w = { .stop_after = 0 };
	for (unsigned i = 0; i < NV; i++) {
		w.expect[i] = val_new(i);
		tc_add(c, w.expect[i], NULL);
	}
	wref_release(w.expect[1]);
	wref_release(w.expect[3]);
	ck_assert_int_eq(wref__table_foreach(&c->t, visit, &w), 0);
	ck_assert_int_eq(w.visits, NV - 2);
	ck_assert_uint_eq(w.seen, 1u << 0 | 1u << 2 | 1u << 4);

	struct walk w2 = w;
	w2.seen = 0;
	w2.visits = 0;
	w2.stop_after = 2;
	ck_assert_int_eq(wref__table_foreach(&c->t, visit, &w2), 7);
	ck_assert_int_eq(w2.visits, 2);

	/* clear: every entry present goes, each through forget and retire */
	wref__table_clear(&c->t);
	ck_assert_uint_eq(wref__table_len(&c->t), 0);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(atomic_load(&retired), NV);
	ck_assert_uint_eq(atomic_load(&forgotten), NV - 2);
	w2.visits = 0;
	ck_assert_int_eq(wref__table_foreach(&c->t, visit, &w2), 0);
	ck_assert_int_eq(w2.visits, 0);
	wref_release(w.expect[0]);
	wref_release(w.expect[2]);
	wref_release(w.expect[4]);
	wref_release(c);
	ct_assert_no_leak(start);
}
END_TEST

struct walk_del {
	struct tc *c;
	struct val *o[NV];
	int visits;
};

/* the first visit removes every other entry: the walk must skip them */
static int visit_del(const struct wref__pin *p, void *ctx)
{
	struct walk_del *w = ctx;
	if (w->visits++ == 0)
		for (unsigned i = 0; i < NV; i++)
			if (w->o[i] != p->obj)
				ck_assert(tc_del(w->c, w->o[i]));
	return 0;
}

START_TEST(table_foreach_skips_removed)
{
	struct wref_stats start = ct_stats();
	counters_reset();
	struct walk_del w = { .c = tc_new(0, 0) };
	for (unsigned i = 0; i < NV; i++) {
		w.o[i] = val_new(i);
		tc_add(w.c, w.o[i], NULL);
	}
	/* removed since the snapshot, with their objects alive: skipped */
	ck_assert_int_eq(wref__table_foreach(&w.c->t, visit_del, &w), 0);
	ck_assert_int_eq(w.visits, 1);
	ck_assert_uint_eq(wref__table_len(&w.c->t), 1);
	ck_assert_uint_eq(atomic_load(&forgotten), NV - 1);
	for (unsigned i = 0; i < NV; i++)
		wref_release(w.o[i]);
	wref_release(w.c);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(atomic_load(&retired), NV);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- the retention tier --------------------------------------------------- */

static _Atomic uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return atomic_load(&fake_now);
}

/* an access to @obj's entry (obj pinned by the caller), as a map does */
static void tc_touch(struct tc *c, struct tent *v)
{
	wref__rcu_lock();
	bool sched = wref__tier_touch(c->tier, &v->r);
	wref__rcu_unlock();
	if (sched)
		wref__tier_schedule(c->tier);
}

START_TEST(tier_retains_by_time)
{
	struct wref_stats start = ct_stats();
	counters_reset();
	atomic_store(&fake_now, 1000);
	wref__clock_set(fake_clock);
	struct tc *c = tc_new(100, 0);
	struct val *a = val_new(0), *b = val_new(1), *d = val_new(2);
	struct tent *va, *vb, *vd;
	tc_add(c, a, &va);
	tc_add(c, b, &vb);
	tc_add(c, d, &vd);
	tc_touch(c, va);
	tc_touch(c, vd);
	/* the tier records the order of its accesses when it drains them:
	 * a and d first */
	wref__retain_sync();
	atomic_store(&fake_now, 1050);
	tc_touch(c, vb);
	atomic_store(&fake_now, 1090);
	tc_touch(c, vd); /* refreshed: d's last access is now 1090 */
	wref_release(a);
	wref_release(b);
	wref_release(d);
	wref__retain_sync();
	ck_assert_uint_eq(atomic_load(&dead_mask), 0); /* all retained */

	atomic_store(&fake_now, 1120); /* a: 120 ms idle */
	wref__retain_sync();
	ck_assert(is_dead(0));
	ck_assert(!is_dead(1));
	ck_assert(!is_dead(2));
	ck_assert_uint_eq(wref__table_len(&c->t), 2);

	atomic_store(&fake_now, 1160); /* b: 110, d: 70 */
	wref__retain_sync();
	ck_assert(is_dead(1));
	ck_assert(!is_dead(2));

	atomic_store(&fake_now, 1190);
	wref__retain_sync();
	ck_assert(is_dead(2));
	ck_assert_uint_eq(wref__table_len(&c->t), 0);
	ck_assert_uint_eq(atomic_load(&forgotten), 0);
	wref_release(c);
	wref__clock_set(NULL);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(tier_retains_by_count_lru)
{
	struct wref_stats start = ct_stats();
	counters_reset();
	atomic_store(&fake_now, 1000);
	wref__clock_set(fake_clock);
	struct tc *c = tc_new(UINT32_MAX, 2);
	struct val *o[4];
	struct tent *v[4];
	for (unsigned i = 0; i < 4; i++) {
		o[i] = val_new(i);
		tc_add(c, o[i], &v[i]);
	}
	for (unsigned i = 0; i < 3; i++) {
		atomic_fetch_add(&fake_now, 1);
		tc_touch(c, v[i]); /* the third goes over retain_max */
	}
	for (unsigned i = 0; i < 3; i++)
		wref_release(o[i]);
	wref__retain_sync();
	/* the least recently used went */
	ck_assert_uint_eq(atomic_load(&dead_mask), 1u << 0);

	/* an access to 1 makes 2 the least recently used */
	wref__rcu_lock();
	void *p1 = wref__entry_upgrade(&v[1]->e);
	wref__rcu_unlock();
	ck_assert_ptr_eq(p1, o[1]);
	atomic_fetch_add(&fake_now, 1);
	tc_touch(c, v[1]);
	wref_release(p1);
	atomic_fetch_add(&fake_now, 1);
	tc_touch(c, v[3]);
	wref_release(o[3]);
	wref__retain_sync();
	ck_assert_uint_eq(atomic_load(&dead_mask), 1u << 0 | 1u << 2);
	ck_assert_uint_eq(wref__table_len(&c->t), 2);
	wref_release(c); /* kill: the tier lets 1 and 3 go */
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(atomic_load(&dead_mask), 0xf);
	wref__clock_set(NULL);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(tier_forget_drops_hold_and_refuses)
{
	struct wref_stats start = ct_stats();
	counters_reset();
	atomic_store(&fake_now, 1000);
	wref__clock_set(fake_clock);
	struct tc *c = tc_new(UINT32_MAX, 0);
	struct val *a = val_new(0), *b = val_new(1);
	struct tent *va, *vb;
	tc_add(c, a, &va);
	tc_add(c, b, &vb);
	tc_touch(c, va);
	wref_release(a);
	wref__retain_sync();
	ck_assert(!is_dead(0)); /* retained */
	/* a user-side removal drops the tier's hold at once (rule 17) */
	ck_assert(tc_del(c, a));
	ck_assert_uint_eq(atomic_load(&forgotten), 1);
	ck_assert(is_dead(0));

	/* forgotten, a node refuses every later touch */
	tc_touch(c, vb);
	wref__entry_hold(&vb->e); /* keep the node valid past the removal */
	ck_assert(tc_del(c, b));
	ck_assert(!is_dead(1)); /* we still hold b */
	tc_touch(c, vb);
	wref_release(b);
	ck_assert(is_dead(1)); /* not retained again */
	wref__entry_put(&vb->e);
	wref__retain_sync();
	ck_assert_uint_eq(wref__table_len(&c->t), 0);
	wref_release(c);
	wref__clock_set(NULL);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(tier_kill_releases_all)
{
	struct wref_stats start = ct_stats();
	counters_reset();
	struct tc *c = tc_new(UINT32_MAX, 0);
	enum { N = 20 };
	struct val *o[N];
	struct tent *v[N];
	for (unsigned i = 0; i < N; i++) {
		o[i] = val_new(i);
		tc_add(c, o[i], &v[i]);
		tc_touch(c, v[i]);
		wref_release(o[i]);
	}
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(atomic_load(&dead_mask), 0);
	ck_assert_uint_eq(wref__table_len(&c->t), N);
	wref_release(c); /* destroy: kill, then the table's teardown */
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(atomic_load(&dead_mask), (1u << N) - 1);
	ck_assert_uint_eq(atomic_load(&retired), N);
	ct_assert_no_leak(start);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("table_tier");
	TCase *tc = tcase_create("table");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, table_add_unique_keeps_first);
	tcase_add_test(tc, table_replace_hands_back_old);
	tcase_add_test(tc, table_unlink_once);
	tcase_add_test(tc, table_death_removes_entry);
	tcase_add_test(tc, table_foreach_live_and_stop);
	tcase_add_test(tc, table_foreach_skips_removed);
	suite_add_tcase(s, tc);
	tc = tcase_create("tier");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, tier_retains_by_time);
	tcase_add_test(tc, tier_retains_by_count_lru);
	tcase_add_test(tc, tier_forget_drops_hold_and_refuses);
	tcase_add_test(tc, tier_kill_releases_all);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ct_run_suite(suite());
}
