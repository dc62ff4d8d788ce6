/*
 * stress_containers.c - the containers under concurrency (short in make
 * check, scaled by WREF_STRESS_SCALE; clean under make check-tsan):
 *  1. get_or_create storm: rounds of N threads on a small key space while
 *     objects die constantly; every caller of one round gets the same
 *     object; nothing leaks (plain and CREATE_ONCE).
 *  2. foreach under concurrent insert, delete and death (valmap, keymap,
 *     set): every object yielded is alive and belongs to its key.
 *  3. same-key replace racing the old entry's death: the newer entry
 *     always survives.
 *  4. retention tier: accesses racing expiry and LRU trimming under the
 *     controllable clock; everything released at the end.
 *  5. container teardown while other threads kill its objects.
 *  6. the tables grow (the executor's lfht resizes, table.h) under
 *     inserts, lookups, removals and deaths, and a map is released while
 *     its resize may still be queued.
 *  7. removal (del, pop, discard) racing replace on the same key with live
 *     objects: the removers meet entries that the replace is retiring.
 */
#include "containers_test.h"

#include <sched.h>

#define THREADS 4
#define KEYS 8

/* an object that knows its key and whether it is alive */
enum { LIVE = 0x11, DEAD = 0xdd };
struct kobj {
	_Atomic int state;
	int key;
};

static _Atomic long poisoned;

static void kobj_destroy(void *p)
{
	struct kobj *o = p;
	atomic_store_explicit(&o->state, DEAD, memory_order_relaxed);
}

static const wref_type kobj_type = {
	.name = "kobj",
	.destroy = kobj_destroy,
};

static struct kobj *kobj_new(int key)
{
	struct kobj *o = wref_new(&kobj_type, sizeof *o);
	ck_assert_ptr_nonnull(o);
	o->key = key;
	atomic_store(&o->state, LIVE);
	return o;
}

static void check_live(void *p, int key)
{
	struct kobj *o = p;
	/* relaxed: a poison check; the pin keeps the state LIVE */
	if (atomic_load_explicit(&o->state, memory_order_relaxed) != LIVE ||
	    (key >= 0 && o->key != key))
		atomic_fetch_add(&poisoned, 1);
}

static void *make_kobj(const void *key, size_t len, void *arg)
{
	int k;
	memcpy(&k, key, sizeof k);
	ct_spin(200);
	return kobj_new(k);
}

/* ---- 1. get_or_create storm ---------------------------------------------- */

static struct {
	wref_valmap *m;
	pthread_barrier_t bar;
	long rounds;
	void *got[THREADS];
	_Atomic long mismatches;
} st;

static void *storm_thread(void *p)
{
	int id = (int)(intptr_t)p;
	uint64_t seed = 77 + (uint64_t)id;
	void *keep = NULL; /* sometimes carried over into the next rounds */
	for (long r = 0; r < st.rounds; r++) {
		int k = (int)(r % KEYS);
		pthread_barrier_wait(&st.bar);
		ct_spin((unsigned)(ct_rand(&seed) % 2000));
		void *o = wref_valmap_get_or_create(st.m, &k, sizeof k,
						    make_kobj, NULL);
		ck_assert_ptr_nonnull(o);
		check_live(o, k);
		st.got[id] = o;
		pthread_barrier_wait(&st.bar);
		if (id == 0)
			for (int i = 1; i < THREADS; i++)
				if (st.got[i] != st.got[0])
					atomic_fetch_add(&st.mismatches, 1);
		/* churn: another key's entry dies or is revived at random */
		int k2 = (int)(ct_rand(&seed) % KEYS);
		void *o2 = wref_valmap_get(st.m, &k2, sizeof k2);
		if (o2)
			check_live(o2, k2);
		pthread_barrier_wait(&st.bar);
		/* release at random points: entries die while others look */
		ct_spin((unsigned)(ct_rand(&seed) % 1000));
		wref_release(o2);
		if (ct_rand(&seed) % 4 == 0) {
			wref_release(keep);
			keep = o;
		} else {
			wref_release(o);
		}
	}
	wref_release(keep);
	return NULL;
}

START_TEST(test_storm)
{
	struct wref_stats s0 = ct_stats();
	wref_map_options o = { .flags = _i ? WREF_MAP_CREATE_ONCE : 0 };
	pthread_t th[THREADS];
	memset(&st, 0, sizeof st);
	st.m = wref_valmap_new(&o);
	st.rounds = (ct_tsan() ? 300 : 3000) * ct_scale();
	pthread_barrier_init(&st.bar, NULL, THREADS);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, storm_thread, (void *)(intptr_t)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&st.bar);
	ck_assert_int_eq(atomic_load(&st.mismatches), 0);
	ck_assert_int_eq(atomic_load(&poisoned), 0);
	ck_assert_uint_eq(wref_valmap_len(st.m), 0); /* all released */
	wref_release(st.m);
	ct_assert_no_leak(s0);
}
END_TEST

/* free-running variant: no rounds, concurrent get_or_create + random
 * holds; no two live entries for one key are ever seen */
static _Atomic int stop;

static void *storm_free(void *p)
{
	wref_valmap *m = p;
	uint64_t seed = (uint64_t)(uintptr_t)&seed;
	void *held[KEYS] = { 0 };
	while (!atomic_load(&stop)) {
		int k = (int)(ct_rand(&seed) % KEYS);
		void *o = wref_valmap_get_or_create(m, &k, sizeof k,
						    make_kobj, NULL);
		check_live(o, k);
		/* while we hold o, the map must return o for k */
		void *g = wref_valmap_get(m, &k, sizeof k);
		if (g != o) {
			/* only a set/del could change it; there are none */
			atomic_fetch_add(&st.mismatches, 1);
		}
		wref_release(g);
		if (ct_rand(&seed) % 2) {
			wref_release(held[k]);
			held[k] = o;
		} else {
			wref_release(o);
		}
	}
	for (int k = 0; k < KEYS; k++)
		wref_release(held[k]);
	return NULL;
}

START_TEST(test_storm_free)
{
	struct wref_stats s0 = ct_stats();
	wref_map_options o = { .flags = _i ? WREF_MAP_CREATE_ONCE : 0 };
	wref_valmap *m = wref_valmap_new(&o);
	pthread_t th[THREADS];
	atomic_store(&stop, 0);
	atomic_store(&st.mismatches, 0);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, storm_free, m);
	usleep((useconds_t)(300000 * ct_scale()));
	atomic_store(&stop, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&st.mismatches), 0);
	ck_assert_int_eq(atomic_load(&poisoned), 0);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref_release(m);
	ct_assert_no_leak(s0);
}
END_TEST

/* ---- 2. foreach under mutation ------------------------------------------- */

static struct {
	wref_valmap *vm;
	wref_keymap *km;
	wref_set *set;
	struct kobj *keys[64]; /* keymap keys, replaced at random */
	_Atomic long walks;
} it;

static void *mutator(void *p)
{
	uint64_t seed = (uint64_t)(uintptr_t)p * 31 + 1;
	void *held[16] = { 0 };
	while (!atomic_load(&stop)) {
		int k = (int)(ct_rand(&seed) % 64);
		struct kobj *o = kobj_new(k);
		switch (ct_rand(&seed) % 6) {
		case 0:
			wref_valmap_set(it.vm, &k, sizeof k, o);
			break;
		case 1:
			wref_valmap_del(it.vm, &k, sizeof k);
			break;
		case 2:
			wref_set_add(it.set, o);
			break;
		case 3: {
			struct kobj *key = kobj_new(k);
			struct kobj *v = kobj_new(k);
			wref_keymap_set(it.km, key, v);
			wref_release(v);
			/* hold the key for a while, then let it die */
			int slot = (int)(ct_rand(&seed) % 16);
			wref_release(held[slot]);
			held[slot] = key;
			break;
		}
		case 4:
			wref_valmap_clear(it.vm);
			break;
		default:
			break;
		}
		/* the object lives a little: in a slot, or dies now */
		int slot = (int)(ct_rand(&seed) % 16);
		wref_release(held[slot]);
		held[slot] = o;
	}
	for (int i = 0; i < 16; i++)
		wref_release(held[i]);
	return NULL;
}

static int vm_fn(const void *key, size_t len, void *obj, void *arg)
{
	int k;
	if (len != sizeof k) {
		atomic_fetch_add(&poisoned, 1);
		return 0;
	}
	memcpy(&k, key, sizeof k);
	check_live(obj, k);
	if (arg) /* modify while iterating */
		wref_valmap_del(it.vm, key, len);
	return 0;
}

static int km_fn(void *key, void *value, void *arg)
{
	check_live(key, -1);
	check_live(value, ((struct kobj *)key)->key);
	return 0;
}

static int set_fn(void *obj, void *arg)
{
	check_live(obj, -1);
	return 0;
}

static void *walker(void *p)
{
	uint64_t seed = 99;
	while (!atomic_load(&stop)) {
		bool modify = ct_rand(&seed) % 8 == 0;
		ck_assert_int_eq(wref_valmap_foreach(it.vm, vm_fn,
						     modify ? &seed : NULL), 0);
		ck_assert_int_eq(wref_keymap_foreach(it.km, km_fn, NULL), 0);
		ck_assert_int_eq(wref_set_foreach(it.set, set_fn, NULL), 0);
		/* 64 keys; len may lag by the removals in flight */
		size_t n = wref_valmap_len(it.vm);
		if (n > 64 + THREADS)
			atomic_fetch_add(&poisoned, 1);
		atomic_fetch_add(&it.walks, 1);
	}
	return NULL;
}

START_TEST(test_foreach_mutation)
{
	struct wref_stats s0 = ct_stats();
	pthread_t th[THREADS];
	memset(&it, 0, sizeof it);
	atomic_store(&stop, 0);
	it.vm = wref_valmap_new(NULL);
	it.km = wref_keymap_new(NULL);
	it.set = wref_set_new(NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, i < 2 ? walker : mutator,
			       (void *)(intptr_t)(i + 1));
	usleep((useconds_t)(400000 * ct_scale()));
	atomic_store(&stop, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&poisoned), 0);
	ck_assert_int_gt(atomic_load(&it.walks), 0);
	ck_assert_uint_eq(wref_valmap_len(it.vm), 0);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(wref_keymap_len(it.km), 0);
	ck_assert_uint_eq(wref_set_len(it.set), 0);
	wref_release(it.vm);
	wref_release(it.km);
	wref_release(it.set);
	ct_assert_no_leak(s0);
}
END_TEST

/* ---- 3. same-key replace vs old death ------------------------------------- */

static struct {
	wref_valmap *m;
	wref_keymap *km;
	pthread_barrier_t bar;
	struct kobj *old;
	long rounds;
} rp;

static void *old_killer(void *p)
{
	uint64_t seed = 5;
	for (long r = 0; r < rp.rounds; r++) {
		pthread_barrier_wait(&rp.bar);
		ct_spin((unsigned)(ct_rand(&seed) % 3000));
		wref_release(rp.old); /* the old value dies */
		pthread_barrier_wait(&rp.bar);
	}
	return NULL;
}

START_TEST(test_replace_vs_death)
{
	struct wref_stats s0 = ct_stats();
	pthread_t th;
	uint64_t seed = 6;
	memset(&rp, 0, sizeof rp);
	rp.m = wref_valmap_new(NULL);
	rp.km = wref_keymap_new(NULL);
	rp.rounds = (ct_tsan() ? 2000 : 20000) * ct_scale();
	pthread_barrier_init(&rp.bar, NULL, 2);
	pthread_create(&th, NULL, old_killer, NULL);
	int k = 1;
	struct kobj *key = kobj_new(0);
	for (long r = 0; r < rp.rounds; r++) {
		rp.old = kobj_new(1);
		ck_assert_int_eq(wref_valmap_set(rp.m, &k, sizeof k, rp.old),
				 0);
		struct kobj *nv = kobj_new(2);
		pthread_barrier_wait(&rp.bar);
		ct_spin((unsigned)(ct_rand(&seed) % 3000));
		ck_assert_int_eq(wref_valmap_set(rp.m, &k, sizeof k, nv), 0);
		pthread_barrier_wait(&rp.bar);
		/* the old one is dead and its removal done: the new entry
		 * must be there */
		struct kobj *g = wref_valmap_get(rp.m, &k, sizeof k);
		ck_assert_ptr_eq(g, nv);
		ck_assert_uint_eq(wref_valmap_len(rp.m), 1);
		wref_release(g);
		wref_release(nv);
		ck_assert_uint_eq(wref_valmap_len(rp.m), 0);
	}
	pthread_join(th, NULL);
	pthread_barrier_destroy(&rp.bar);
	wref_release(key);
	wref_release(rp.m);
	wref_release(rp.km);
	ct_assert_no_leak(s0);
}
END_TEST

/* by-value keymap/set: the old (equal) key dies while a new one replaces
 * it; the new entry survives */
START_TEST(test_replace_vs_death_by_value)
{
	struct wref_stats s0 = ct_stats();
	wref_map_options bv = { .flags = WREF_MAP_BY_VALUE };
	wref_keymap *km = wref_keymap_new(&bv);
	wref_set *s = wref_set_new(&bv);
	struct item *val = item_new(&item_type, 0, NULL);
	long rounds = (ct_tsan() ? 500 : 5000) * ct_scale();
	for (long r = 0; r < rounds; r++) {
		struct item *a = item_new(&vitem_type, 1, NULL);
		struct item *b = item_new(&vitem_type, 1, NULL);
		ck_assert_int_eq(wref_keymap_set(km, a, val), 0);
		ck_assert_int_eq(wref_set_add(s, a), 0);
		ck_assert_int_eq(wref_keymap_set(km, b, val), 0);
		ck_assert_int_eq(wref_set_add(s, b), -EEXIST);
		wref_release(a);
		struct item *g = wref_keymap_get(km, b);
		ck_assert_ptr_eq(g, val);
		wref_release(g);
		ck_assert(!wref_set_contains(s, b)); /* a's membership */
		ck_assert_int_eq(wref_set_add(s, b), 0);
		wref_release(b);
		ck_assert_uint_eq(wref_keymap_len(km), 0);
		ck_assert_uint_eq(wref_set_len(s), 0);
	}
	wref_release(km);
	wref_release(s);
	wref_release(val);
	ct_assert_no_leak(s0);
}
END_TEST

/* ---- 4. retention tier ---------------------------------------------------- */

static void *tier_user(void *p)
{
	wref_valmap *m = p;
	uint64_t seed = (uint64_t)(uintptr_t)&seed;
	while (!atomic_load(&stop)) {
		int k = (int)(ct_rand(&seed) % 32);
		void *o;
		switch (ct_rand(&seed) % 5) {
		case 0:
			o = kobj_new(k);
			wref_valmap_set(m, &k, sizeof k, o);
			break;
		case 1:
			wref_valmap_del(m, &k, sizeof k);
			o = NULL;
			break;
		default:
			o = wref_valmap_get_or_create(m, &k, sizeof k,
						      make_kobj, NULL);
			check_live(o, k);
			break;
		}
		wref_release(o);
		atomic_fetch_add(&fake_now, ct_rand(&seed) % 3);
	}
	return NULL;
}

START_TEST(test_retention)
{
	struct wref_stats s0 = ct_stats();
	atomic_store(&fake_now, 0);
	wref__clock_set(fake_clock);
	wref_map_options o = { .retain_ms = 50, .retain_max = _i ? 8 : 0 };
	wref_valmap *m = wref_valmap_new(&o);
	pthread_t th[THREADS];
	atomic_store(&stop, 0);
	for (int i = 0; i < THREADS - 1; i++)
		pthread_create(&th[i], NULL, tier_user, m);
	double t0 = ct_now();
	while (ct_now() - t0 < 0.3 * (double)ct_scale()) {
		wref__retain_sync(); /* expiry racing the accesses */
		usleep(1000);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < THREADS - 1; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&poisoned), 0);
	if (o.retain_max) {
		ck_assert_int_eq(wref_flush(), 0);
		ck_assert_uint_le(wref_valmap_len(m), o.retain_max);
	}
	/* everything expires; nothing is held by anyone else */
	atomic_fetch_add(&fake_now, 1000);
	wref__retain_sync();
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref_release(m);
	wref__clock_set(NULL);
	ct_assert_no_leak(s0);
}
END_TEST

/* issue 16 item 4: del, pop, clear and a replacing set drop the tier's hold
 * at once, also while a getter touches the same entry.  A getter hammers
 * the key; each round sets a fresh object (the tier holds it, we drop ours)
 * and removes it; with expiry out of reach every object still alive at the
 * end (but the current value of the replacing round) is a leaked hold.
 * The old forget decided from a relaxed read before the counts dropped:
 * measured 40 (del), 17 (pop), 3 (clear), 13 (replace) leaks per 100k
 * rounds with one getter (the figures); here (2 shared cores)
 * 100k rounds gave del 2-3, pop 0-1, clear 0-1, replace 0-3, at least
 * two ops failing in each of 4 runs. */
static void *leak_getter(void *p)
{
	wref_valmap *m = p;
	while (!atomic_load(&stop)) {
		void *o = wref_valmap_get(m, "k", 1);
		if (o)
			wref_release(o);
	}
	return NULL;
}

START_TEST(test_retention_removal_race)
{
	struct wref_stats s0 = ct_stats();
	atomic_store(&fake_now, 0);
	wref__clock_set(fake_clock);
	wref_map_options o = { .retain_ms = UINT64_C(1) << 40 };
	wref_valmap *m = wref_valmap_new(&o);
	_Atomic int d = 0;
	atomic_store(&stop, 0);
	pthread_t th;
	pthread_create(&th, NULL, leak_getter, m);
	long rounds = (ct_tsan() ? 10000 : 100000) * ct_scale();
	for (long r = 0; r < rounds; r++) {
		struct item *x = item_new(&item_type, (uint64_t)r, &d);
		ck_assert_int_eq(wref_valmap_set(m, "k", 1, x), 0);
		wref_release(x); /* the tier holds it now */
		switch (_i) {
		case 0:
			wref_valmap_del(m, "k", 1);
			break;
		case 1:
			wref_release(wref_valmap_pop(m, "k", 1));
			break;
		case 2:
			wref_valmap_clear(m);
			break;
		default: /* the next round's set replaces it */
			break;
		}
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	ck_assert_int_eq(wref_flush(), 0);
	long leaked = rounds - atomic_load(&d) - (_i == 3 ? 1 : 0);
	ck_assert_msg(leaked == 0, "op %d: %ld of %ld removed objects still "
		      "held by the tier", _i, leaked, rounds);
	atomic_store(&fake_now, UINT64_C(1) << 41);
	wref__retain_sync();
	wref_release(m);
	wref__clock_set(NULL);
	ct_assert_no_leak(s0);
}
END_TEST

/* suspected item (issue 16): clear must end while inserts continue.
 * CLEAR_THREADS threads keep setting entries under 4096 keys (one object
 * per key) until clear returned or they did CLEAR_CAP sets each; reaching
 * the cap means clear kept looping.  The old clear restarted its pass until
 * one unlinked nothing, so it would run as long as inserts outpaced it; in
 * practice it did not fail here: with 2, 4 or 16 inserters on 2 shared
 * cores the old clear returned after 2k-8k concurrent sets (clear's
 * unlinks are much cheaper than sets).  The new clear is one walk. */
#define CLEAR_CAP 300000L
#define CLEAR_THREADS 4
static _Atomic int clear_done;
static _Atomic long clear_sets;
static _Atomic int clear_capped;
static struct item *clear_obj[4096]; /* one per key: no shared block lock */

static void *clear_inserter(void *p)
{
	wref_valmap *m = p;
	long n = 0;
	for (; n < CLEAR_CAP * ct_scale() && !atomic_load(&clear_done); n++) {
		uint32_t k = (uint32_t)(n % 4096);
		ck_assert_int_eq(wref_valmap_set(m, &k, sizeof k, clear_obj[k]),
				 0);
		atomic_fetch_add(&clear_sets, 1);
	}
	if (n == CLEAR_CAP * ct_scale())
		atomic_store(&clear_capped, 1);
	return NULL;
}

START_TEST(test_clear_vs_inserts)
{
	struct wref_stats s0 = ct_stats();
	wref_valmap *m = wref_valmap_new(NULL);
	for (int i = 0; i < 4096; i++)
		clear_obj[i] = item_new(&item_type, (uint64_t)i, NULL);
	atomic_store(&clear_done, 0);
	atomic_store(&clear_capped, 0);
	atomic_store(&clear_sets, 0);
	pthread_t th[CLEAR_THREADS];
	for (int i = 0; i < CLEAR_THREADS; i++)
		pthread_create(&th[i], NULL, clear_inserter, m);
	while (atomic_load(&clear_sets) < 2000 && !atomic_load(&clear_capped))
		sched_yield();
	wref_valmap_clear(m);
	atomic_store(&clear_done, 1);
	for (int i = 0; i < CLEAR_THREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert_msg(!atomic_load(&clear_capped),
		      "clear ran until the inserters gave up (%ld sets)",
		      atomic_load(&clear_sets));
	wref_release(m);
	for (int i = 0; i < 4096; i++)
		wref_release(clear_obj[i]);
	ct_assert_no_leak(s0);
}
END_TEST

/* ---- 5. teardown racing deaths ------------------------------------------- */

static struct kobj *td_objs[256];

static void *td_killer(void *p)
{
	intptr_t part = (intptr_t)p;
	for (int i = (int)part; i < 256; i += 2) {
		wref_release(td_objs[i]);
		ct_spin(50);
	}
	return NULL;
}

START_TEST(test_teardown_vs_death)
{
	struct wref_stats s0 = ct_stats();
	long rounds = (ct_tsan() ? 20 : 200) * ct_scale();
	for (long r = 0; r < rounds; r++) {
		wref_valmap *m = wref_valmap_new(NULL);
		wref_set *s = wref_set_new(NULL);
		wref_keymap *km = wref_keymap_new(NULL);
		for (int i = 0; i < 256; i++) {
			td_objs[i] = kobj_new(i);
			wref_valmap_set(m, &i, sizeof i, td_objs[i]);
			wref_set_add(s, td_objs[i]);
			struct kobj *v = kobj_new(i);
			wref_keymap_set(km, td_objs[i], v);
			wref_release(v);
		}
		pthread_t th[2];
		for (intptr_t i = 0; i < 2; i++)
			pthread_create(&th[i], NULL, td_killer, (void *)i);
		wref_release(m);
		wref_release(km);
		wref_release(s);
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
	}
	ct_assert_no_leak(s0);
}
END_TEST


/* ---- 6. growth under lookups, removals and deaths ------------------------ */

#define GROW_KEYS 3000
static struct kobj *grow_objs[GROW_KEYS];
static _Atomic int grow_done;

struct grow_ctx {
	wref_valmap *m;
	wref_set *s;
	wref_keymap *km;
	int part;
};

/* inserts its half of the keys; every key it inserted so far (the objects
 * stay alive) is found in all three containers, while they resize */
static void *grow_inserter(void *p)
{
	struct grow_ctx *c = p;
	uint64_t seed = (uint64_t)c->part + 1;
	for (int i = c->part; i < GROW_KEYS; i += 2) {
		ck_assert_int_eq(wref_valmap_set(c->m, &i, sizeof i,
						 grow_objs[i]), 0);
		ck_assert_int_eq(wref_set_add(c->s, grow_objs[i]), 0);
		ck_assert_int_eq(wref_keymap_set(c->km, grow_objs[i],
						 grow_objs[i]), 0);
		int j = c->part + 2 * (int)(ct_rand(&seed) % (uint64_t)(i / 2 + 1));
		if (j > i)
			j = i;
		struct kobj *o = wref_valmap_get(c->m, &j, sizeof j);
		ck_assert_ptr_eq(o, grow_objs[j]);
		wref_release(o);
		ck_assert(wref_set_contains(c->s, grow_objs[j]));
		o = wref_keymap_get(c->km, grow_objs[j]);
		ck_assert_ptr_eq(o, grow_objs[j]);
		wref_release(o);
	}
	return NULL;
}

/* keys past GROW_KEYS: created, dropped (their deaths unlink entries
 * while the table resizes), deleted */
static void *grow_churner(void *p)
{
	struct grow_ctx *c = p;
	for (long n = 0; !atomic_load(&grow_done); n++) {
		int k = GROW_KEYS + (int)(n % 97);
		struct kobj *o = wref_valmap_get_or_create(c->m, &k, sizeof k,
							   make_kobj, NULL);
		ck_assert_ptr_nonnull(o);
		check_live(o, k);
		if (n % 3 == 0)
			wref_set_add(c->s, o);
		if (n % 5 == 0)
			wref_valmap_del(c->m, &k, sizeof k);
		wref_release(o);
	}
	return NULL;
}

START_TEST(test_grow_vs_lookups)
{
	struct wref_stats s0 = ct_stats();
	long rounds = (ct_tsan() ? 2 : 6) * ct_scale();
	for (long r = 0; r < rounds; r++) {
		for (int i = 0; i < GROW_KEYS; i++)
			grow_objs[i] = kobj_new(i);
		struct grow_ctx c[3];
		c[0].m = wref_valmap_new(NULL);
		c[0].s = wref_set_new(NULL);
		c[0].km = wref_keymap_new(NULL);
		atomic_store(&grow_done, 0);
		pthread_t th[3];
		for (int i = 0; i < 3; i++) {
			c[i] = c[0];
			c[i].part = i;
			pthread_create(&th[i], NULL, i < 2 ? grow_inserter :
				       grow_churner, &c[i]);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		atomic_store(&grow_done, 1);
		pthread_join(th[2], NULL);
		ck_assert_uint_ge(wref_valmap_len(c[0].m), GROW_KEYS);
		ck_assert_int_eq(atomic_load(&poisoned), 0);
		/* a resize may still be queued: it holds the map */
		wref_release(c[0].m);
		wref_release(c[0].s);
		wref_release(c[0].km);
		for (int i = 0; i < GROW_KEYS; i++)
			wref_release(grow_objs[i]);
	}
	ct_assert_no_leak(s0);
}
END_TEST

/* 7. removal racing replace on live objects: a del/pop finds an entry
 * under RCU that a replace (set on the same key) is retiring right then,
 * its object still alive; the remover must not read the retiring entry's
 * watch (its rcu head covers it).  valmap, keymap and set. */
#define RR_KEYS 4
static _Atomic int rr_done;
struct rr_ctx {
	wref_valmap *m;
	wref_keymap *km;
	wref_set *s;
	struct kobj *objs[RR_KEYS][2];
	int part;
};

static void *rr_thread(void *p)
{
	struct rr_ctx *c = p;
	for (long n = 0; !atomic_load(&rr_done); n++) {
		int k = (int)(n % RR_KEYS);
		struct kobj *o = c->objs[k][n / RR_KEYS % 2];
		if (c->part == 0) { /* replace, replace again */
			wref_valmap_set(c->m, &k, sizeof k, o);
			wref_keymap_set(c->km, o, o);
			wref_set_add(c->s, o);
		} else if (n % 2) {
			wref_valmap_del(c->m, &k, sizeof k);
			wref_keymap_del(c->km, o);
			wref_set_discard(c->s, o);
		} else {
			wref_release(wref_valmap_pop(c->m, &k, sizeof k));
			wref_release(wref_keymap_pop(c->km, o));
		}
	}
	return NULL;
}

START_TEST(test_remove_vs_replace)
{
	struct wref_stats s0 = ct_stats();
	struct rr_ctx c[THREADS];
	c[0].m = wref_valmap_new(NULL);
	c[0].km = wref_keymap_new(NULL);
	c[0].s = wref_set_new(NULL);
	for (int k = 0; k < RR_KEYS; k++)
		for (int j = 0; j < 2; j++)
			c[0].objs[k][j] = kobj_new(k);
	atomic_store(&rr_done, 0);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++) {
		c[i] = c[0];
		c[i].part = i % 2;
		pthread_create(&th[i], NULL, rr_thread, &c[i]);
	}
	usleep((useconds_t)(500000 * ct_scale()));
	atomic_store(&rr_done, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&poisoned), 0);
	wref_release(c[0].m);
	wref_release(c[0].km);
	wref_release(c[0].s);
	for (int k = 0; k < RR_KEYS; k++)
		for (int j = 0; j < 2; j++)
			wref_release(c[0].objs[k][j]);
	ct_assert_no_leak(s0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stress_containers");
	TCase *tc = tcase_create("stress");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_loop_test(tc, test_storm, 0, 2);
	tcase_add_loop_test(tc, test_storm_free, 0, 2);
	tcase_add_test(tc, test_foreach_mutation);
	tcase_add_test(tc, test_replace_vs_death);
	tcase_add_test(tc, test_replace_vs_death_by_value);
	tcase_add_loop_test(tc, test_retention, 0, 2);
	tcase_add_test(tc, test_teardown_vs_death);
	suite_add_tcase(s, tc);
	/* issue 16: removal racing the tier, clear racing inserts */
	tc = tcase_create("removal");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_loop_test(tc, test_retention_removal_race, 0, 4);
	tcase_add_test(tc, test_clear_vs_inserts);
	suite_add_tcase(s, tc);
	/* issue 18: the tables size themselves */
	tc = tcase_create("grow");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, test_grow_vs_lookups);
	tcase_add_test(tc, test_remove_vs_replace);
	suite_add_tcase(s, tc);
	return ct_run_suite(s);
}
