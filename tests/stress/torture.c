/*
 * torture.c - T threads x S seconds of a random mix of every public call on
 * a shared pool of objects, refs, methods, finalizers, signals, valmaps,
 * keymaps and sets, with objects dying constantly, while the main thread
 * forks now and then.
 *
 *   tests/torture [-s SECONDS] [-t THREADS] [-i] [-k] [-f FORK_EVERY_S] [SEED]
 *
 * Defaults: 3 seconds (x WREF_STRESS_SCALE when set), 2 x nproc threads, a
 * random seed (printed; each thread's op stream derives from it, so a seed
 * replays the same per-thread mixes), a fork every 0.5 s (none under TSan;
 * -f 0 turns them off).  -i runs with the inline executor (no forks).  -k
 * counts lost callbacks instead of failing.  Forks land wherever the
 * workers are, inside wref_flush included.
 *
 * Invariants, checked continuously and at the end (a failure prints the
 * seed and aborts):
 *  - every callback ref held by its thread when the thread saw its referent
 *    dead runs its callback exactly once; no callback runs twice (per-ref
 *    records, resolved once the handle is gone and every death walk that
 *    could still owe its callback has finished: see rec_resolve);
 *  - every finalizer runs or is detached exactly once;
 *  - nothing handed out by get / ref_call / method_call / emit / container
 *    lookups or walks is an object whose destroy has begun (destroy poisons
 *    the payload);
 *  - destroy runs once per object; after everything is released and
 *    flushed, wref_stats objects_live and blocks_live are back to zero;
 *  - a forked child runs the callbacks the parent had queued, uses the
 *    library, and at exit runs its queued callbacks and at-exit finalizers
 *    exactly once without hanging.
 */
#include "internal.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t seed;

#define FAIL(...)                                                          \
	do {                                                               \
		fprintf(stderr, "torture FAILED (seed %llu) %s:%d: ",      \
			(unsigned long long)seed, __FILE__, __LINE__);     \
		fprintf(stderr, __VA_ARGS__);                              \
		fputc('\n', stderr);                                       \
		abort();                                                   \
	} while (0)
#define CHECK(c)                                                           \
	do {                                                               \
		if (!(c))                                                  \
			FAIL("%s", #c);                                    \
	} while (0)

/* ---- objects ---------------------------------------------------------------- */

#define MAGIC_ALIVE UINT64_C(0xa11fea11fea11fe0)
#define MAGIC_POISON UINT64_C(0xdeadbeefdeadbeef)

struct tobj {
	_Atomic uint64_t magic;
	uint64_t id;
	void *child; /* a strong ref to an older object (cascades) */
	char pad[24];
};

static _Atomic uint64_t n_created, n_destroyed, next_id;

static void tobj_destroy(void *p)
{
	struct tobj *o = p;
	uint64_t m = atomic_exchange(&o->magic, MAGIC_POISON);
	if (m != MAGIC_ALIVE)
		FAIL("destroy of %p twice or of a bad object (%llx)", p,
		     (unsigned long long)m);
	atomic_fetch_add(&n_destroyed, 1);
	wref_release(o->child); /* cascade */
}

static uint64_t tobj_hash(const void *p)
{
	return wref__hash_ptr((const void *)(uintptr_t)
			      ((const struct tobj *)p)->id);
}
static bool tobj_equal(const void *a, const void *b)
{
	return ((const struct tobj *)a)->id == ((const struct tobj *)b)->id;
}
static const wref_type tobj_type = { .name = "tobj",
				     .destroy = tobj_destroy,
				     .hash = tobj_hash,
				     .equal = tobj_equal };

/* @p was handed out as alive: its destroy must not have begun */
static void check_alive(const void *p)
{
	CHECK(p);
	uint64_t m = atomic_load(&((const struct tobj *)p)->magic);
	if (m != MAGIC_ALIVE)
		FAIL("handed out %p whose destroy has begun (%llx)", p,
		     (unsigned long long)m);
}

static struct tobj *tobj_new(void *child)
{
	struct tobj *o = wref_new(&tobj_type, sizeof *o);
	CHECK(o);
	atomic_store(&o->magic, MAGIC_ALIVE);
	o->id = atomic_fetch_add(&next_id, 1);
	o->child = child;
	atomic_fetch_add(&n_created, 1);
	return o;
}

/* ---- records: callback refs and finalizers ------------------------------------ */

#define REC_LIVE 0x5eed5eedu
struct rec {
	_Atomic unsigned magic;
	_Atomic int fired;     /* callback runs */
	_Atomic bool must_fire; /* held when its thread saw the death */
};
static _Atomic uint64_t recs_made, recs_done, cb_runs, cb_lost;

static void on_death(wref_ref *r, void *arg)
{
	struct rec *rec = arg;
	CHECK(atomic_load(&rec->magic) == REC_LIVE);
	if (atomic_fetch_add(&rec->fired, 1) != 0)
		FAIL("callback ran twice (ref %p)", (void *)r);
	CHECK(wref_ref_get(r) == NULL);
	CHECK(!wref_ref_alive(r));
	atomic_fetch_add(&cb_runs, 1);
}

/*
 * Resolving a record.  A finalizer on the ref handle runs once the handle
 * is gone; its callback has then run, is cancelled, or is still owed (the
 * handle was released after its referent died but before the dying
 * thread's walk reached it: the walk queues the callback later).  So the
 * finalizer only parks the record in limbo; the main thread periodically
 * takes the limbo batch, waits until every worker has finished the
 * operation it was in (any death walk begun before is complete) and
 * flushes the executor twice (walks inside executor items are complete and
 * the callbacks they queued have run).  Then a record's count is final.
 */
struct limbo {
	struct rec *rec;
	struct limbo *next;
};
static pthread_mutex_t limbo_mu = PTHREAD_MUTEX_INITIALIZER;
static struct limbo *limbo_head;

static void rec_resolve(void *arg)
{
	struct rec *rec = arg;
	CHECK(atomic_load(&rec->magic) == REC_LIVE);
	struct limbo *l = malloc(sizeof *l);
	CHECK(l);
	l->rec = rec;
	pthread_mutex_lock(&limbo_mu);
	l->next = limbo_head;
	limbo_head = l;
	pthread_mutex_unlock(&limbo_mu);
}

static bool known_lost_cb; /* -k: tolerate lost callbacks (count them) */

static void rec_final(struct rec *rec)
{
	CHECK(atomic_load(&rec->magic) == REC_LIVE);
	int fired = atomic_load(&rec->fired);
	if (fired > 1)
		FAIL("callback ran %d times", fired);
	if (atomic_load(&rec->must_fire) && fired != 1) {
		atomic_fetch_add(&cb_lost, 1);
		if (!known_lost_cb)
			FAIL("callback of a ref held at its referent's death "
			     "did not run");
	}
	atomic_store(&rec->magic, 0);
	free(rec);
	atomic_fetch_add(&recs_done, 1);
}

static struct limbo *limbo_take(void)
{
	pthread_mutex_lock(&limbo_mu);
	struct limbo *l = limbo_head;
	limbo_head = NULL;
	pthread_mutex_unlock(&limbo_mu);
	return l;
}

static void limbo_final(struct limbo *l)
{
	while (l) {
		struct limbo *n = l->next;
		rec_final(l->rec);
		free(l);
		l = n;
	}
}

#define FREC_LIVE 0xf1f1f1f1u
struct frec {
	_Atomic unsigned magic;
	_Atomic int runs;
};
static _Atomic uint64_t fin_made, fin_ran, fin_detached;

static void fin_fn(void *arg)
{
	struct frec *f = arg;
	CHECK(atomic_load(&f->magic) == FREC_LIVE);
	if (atomic_fetch_add(&f->runs, 1) != 0)
		FAIL("finalizer ran twice");
	atomic_store(&f->magic, 0);
	free(f);
	atomic_fetch_add(&fin_ran, 1);
}

/* ---- shared pools ------------------------------------------------------------ */

#define NSLOT 64
#define NSIGS 4
#define NCONT 2
struct slot {
	pthread_mutex_t mu;
	void *p; /* a strong ref owned by the slot */
};
static struct slot objs[NSLOT], sigs[NSIGS];
static struct slot vmaps[NCONT], kmaps[NCONT], wsets[NCONT];

/* a new strong ref to what slot @s holds, or NULL */
static void *borrow(struct slot *s)
{
	pthread_mutex_lock(&s->mu);
	void *p = wref_retain(s->p);
	pthread_mutex_unlock(&s->mu);
	return p;
}

/* put @p (a strong ref, may be NULL) into @s; releases the old one */
static void replace(struct slot *s, void *p)
{
	pthread_mutex_lock(&s->mu);
	void *old = s->p;
	s->p = p;
	pthread_mutex_unlock(&s->mu);
	wref_release(old);
}

/* ---- per-thread state ---------------------------------------------------------- */

#define NLOC 8
struct cbref {
	wref_ref *r;
	struct rec *rec;
};
struct thr {
	pthread_t tid;
	_Atomic uint64_t qs; /* bumped between operations */
	_Atomic bool done;
	uint64_t rng;
	uint64_t ops, emits_called;
	void *strong[NLOC];
	wref_ref *refs[NLOC];
	struct cbref cbr[NLOC];
	wref_method *meth[NLOC];
	wref_finalizer *fin[NLOC];
};

static _Atomic bool stop;
static __thread wref_valmap *borrowed_vm; /* for vm_walk */
static _Atomic uint64_t sub_calls, meth_calls;

static uint64_t rnd(struct thr *t)
{
	/* xorshift64* */
	uint64_t x = t->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	t->rng = x;
	return x * UINT64_C(0x2545f4914f6cdd1d);
}
static unsigned rn(struct thr *t, unsigned n)
{
	return (unsigned)(rnd(t) >> 33) % n;
}

static void *any_obj(struct thr *t)
{
	return borrow(&objs[rn(t, NSLOT)]);
}

static void method_fn(void *obj, void *arg)
{
	(void)arg;
	check_alive(obj);
	atomic_fetch_add_explicit(&meth_calls, 1, memory_order_relaxed);
}
static void sub_fn_a(void *obj, void *arg)
{
	check_alive(obj);
	(void)arg;
	atomic_fetch_add_explicit(&sub_calls, 1, memory_order_relaxed);
}
static void sub_fn_b(void *obj, void *arg)
{
	sub_fn_a(obj, arg);
}
static int call_fn(void *obj, void *arg)
{
	(void)arg;
	check_alive(obj);
	return 5;
}

/* release a callback ref, marking whether its referent was seen dead */
static void drop_cbref(struct cbref *c)
{
	if (!c->r)
		return;
	if (!wref_ref_alive(c->r))
		atomic_store(&c->rec->must_fire, true);
	wref_release(c->r);
	c->r = NULL;
	c->rec = NULL;
}

static void op_cbref(struct thr *t, unsigned i)
{
	drop_cbref(&t->cbr[i]);
	void *o = any_obj(t);
	if (!o)
		return;
	struct rec *rec = calloc(1, sizeof *rec);
	CHECK(rec);
	atomic_store(&rec->magic, REC_LIVE);
	wref_ref *r = wref_ref_new(o, on_death, rec);
	CHECK(r);
	/* resolves @rec once the handle and its callback are done */
	wref_finalizer *f = wref_finalize(r, rec_resolve, rec, 0);
	CHECK(f);
	wref_release(f);
	atomic_fetch_add(&recs_made, 1);
	t->cbr[i].r = r;
	t->cbr[i].rec = rec;
	if (rn(t, 4) == 0) {
		/* see the death while holding the ref: must fire */
		replace(&objs[rn(t, NSLOT)], NULL);
	}
	wref_release(o);
}

static void op_fin(struct thr *t, unsigned i)
{
	wref_finalizer *f = t->fin[i];
	if (f) {
		void *arg = NULL;
		switch (rn(t, 4)) {
		case 0:
			wref_finalizer_call(f);
			CHECK(!wref_finalizer_alive(f));
			break;
		case 1:
			if (wref_finalizer_detach(f, &arg)) {
				struct frec *fr = arg;
				CHECK(atomic_load(&fr->magic) == FREC_LIVE);
				free(fr);
				atomic_fetch_add(&fin_detached, 1);
			}
			break;
		case 2:
			wref_finalizer_peek(f, &arg);
			wref_finalizer_set_atexit(f, rn(t, 2));
			break;
		default:
			break; /* release the handle: stays armed */
		}
		wref_release(f);
		t->fin[i] = NULL;
		return;
	}
	void *o = any_obj(t);
	if (!o)
		return;
	struct frec *fr = calloc(1, sizeof *fr);
	CHECK(fr);
	atomic_store(&fr->magic, FREC_LIVE);
	f = wref_finalize(o, fin_fn, fr, rn(t, 2) ? WREF_FIN_ATEXIT : 0);
	CHECK(f);
	atomic_fetch_add(&fin_made, 1);
	t->fin[i] = f;
	wref_release(o);
}

static void op_signal(struct thr *t)
{
	struct slot *ss = &sigs[rn(t, NSIGS)];
	unsigned k = rn(t, 16);
	if (k == 0) {
		wref_signal *s = wref_signal_new();
		CHECK(s);
		replace(ss, s);
		return;
	}
	wref_signal *s = borrow(ss);
	if (!s)
		return;
	wref_method_fn fn = rn(t, 2) ? sub_fn_a : sub_fn_b;
	if (k < 6) {
		void *o = any_obj(t);
		if (o) {
			int rc = wref_signal_connect(s, o, fn);
			CHECK(rc == 0 || rc == -EEXIST);
			wref_release(o);
		}
	} else if (k < 9) {
		void *o = any_obj(t);
		if (o) {
			int rc = wref_signal_disconnect(s, o, fn);
			CHECK(rc == 0 || rc == -ENOENT);
			wref_release(o);
		}
	} else if (k < 15) {
		t->emits_called += wref_signal_emit(s, t);
	} else {
		(void)wref_signal_len(s);
	}
	wref_release(s);
}

/* ---- containers ------------------------------------------------------------- */

static void *make_obj(const void *key, size_t len, void *arg)
{
	(void)key;
	(void)len;
	struct thr *t = arg;
	if (rn(t, 16) == 0) {
		errno = EIO; /* make may fail */
		return NULL;
	}
	return tobj_new(NULL);
}

static int vm_walk(const void *key, size_t len, void *obj, void *arg)
{
	struct thr *t = arg;
	check_alive(obj);
	CHECK(len == sizeof(uint64_t));
	if (rn(t, 8) == 0) /* modify the map being walked */
		(void)wref_valmap_del(borrowed_vm, key, len);
	return rn(t, 32) == 0 ? 1 : 0;
}

static void op_valmap(struct thr *t)
{
	struct slot *ms = &vmaps[rn(t, NCONT)];
	unsigned k = rn(t, 32);
	if (k == 0) {
		wref_map_options o = { .flags = rn(t, 2) ?
				       WREF_MAP_CREATE_ONCE : 0 };
		if (rn(t, 2)) {
			o.retain_ms = 1 + rn(t, 5);
			o.retain_max = rn(t, 2) ? 8 : 0;
		}
		wref_valmap *m = wref_valmap_new(&o);
		CHECK(m);
		replace(ms, m);
		return;
	}
	wref_valmap *m = borrow(ms);
	if (!m)
		return;
	uint64_t key = rn(t, 64);
	void *o;
	if (k < 8) {
		if ((o = any_obj(t))) {
			CHECK(wref_valmap_set(m, &key, sizeof key, o) == 0);
			wref_release(o);
		}
	} else if (k < 16) {
		if ((o = wref_valmap_get(m, &key, sizeof key))) {
			check_alive(o);
			wref_release(o);
		} else {
			CHECK(errno == ENOENT);
		}
	} else if (k < 21) {
		errno = 0;
		o = wref_valmap_get_or_create(m, &key, sizeof key, make_obj,
					      t);
		if (o) {
			check_alive(o);
			if (rn(t, 2)) /* publish it in the pool */
				replace(&objs[rn(t, NSLOT)], wref_retain(o));
			wref_release(o);
		} else {
			CHECK(errno == EIO);
		}
	} else if (k < 24) {
		if ((o = wref_valmap_pop(m, &key, sizeof key))) {
			check_alive(o);
			wref_release(o);
		}
	} else if (k < 27) {
		int rc = wref_valmap_del(m, &key, sizeof key);
		CHECK(rc == 0 || rc == -ENOENT);
	} else if (k < 30) {
		(void)wref_valmap_len(m);
		borrowed_vm = m;
		int rc = wref_valmap_foreach(m, vm_walk, t);
		CHECK(rc == 0 || rc == 1);
	} else {
		wref_valmap_clear(m);
	}
	wref_release(m);
}

static int km_walk(void *key, void *value, void *arg)
{
	(void)arg;
	check_alive(key);
	check_alive(value);
	return 0;
}

static void op_keymap(struct thr *t)
{
	struct slot *ms = &kmaps[rn(t, NCONT)];
	unsigned k = rn(t, 32);
	if (k == 0) {
		wref_keymap *m = wref_keymap_new(NULL);
		CHECK(m);
		replace(ms, m);
		return;
	}
	wref_keymap *m = borrow(ms);
	if (!m)
		return;
	void *key = any_obj(t), *v;
	if (!key) {
		wref_release(m);
		return;
	}
	if (k < 10) {
		if ((v = any_obj(t))) {
			CHECK(wref_keymap_set(m, key, v) == 0);
			wref_release(v);
		}
	} else if (k < 20) {
		if ((v = wref_keymap_get(m, key))) {
			check_alive(v);
			wref_release(v);
		}
	} else if (k < 24) {
		if ((v = wref_keymap_pop(m, key))) {
			check_alive(v);
			wref_release(v);
		}
	} else if (k < 28) {
		int rc = wref_keymap_del(m, key);
		CHECK(rc == 0 || rc == -ENOENT);
	} else {
		(void)wref_keymap_len(m);
		CHECK(wref_keymap_foreach(m, km_walk, t) == 0);
	}
	wref_release(key);
	wref_release(m);
}

static int set_walk(void *obj, void *arg)
{
	(void)arg;
	check_alive(obj);
	return 0;
}

static void op_set(struct thr *t)
{
	struct slot *ss = &wsets[rn(t, NCONT)];
	unsigned k = rn(t, 32);
	if (k == 0) {
		wref_map_options o = { .flags = rn(t, 2) ?
				       WREF_MAP_BY_VALUE : 0 };
		wref_set *s = wref_set_new(&o);
		CHECK(s);
		replace(ss, s);
		return;
	}
	wref_set *s = borrow(ss);
	if (!s)
		return;
	void *o = any_obj(t);
	if (k < 12) {
		if (o) {
			int rc = wref_set_add(s, o);
			CHECK(rc == 0 || rc == -EEXIST);
		}
	} else if (k < 18) {
		if (o) {
			int rc = wref_set_discard(s, o);
			CHECK(rc == 0 || rc == -ENOENT);
		}
	} else if (k < 26) {
		if (o)
			(void)wref_set_contains(s, o);
	} else {
		(void)wref_set_len(s);
		CHECK(wref_set_foreach(s, set_walk, t) == 0);
	}
	wref_release(o);
	wref_release(s);
}

static void one_op(struct thr *t)
{
	unsigned i = rn(t, NLOC);
	unsigned op = rn(t, 124);
	void *o;

	if (op < 10) { /* new object, maybe holding an older one */
		void *child = rn(t, 3) == 0 ? any_obj(t) : NULL;
		replace(&objs[rn(t, NSLOT)], tobj_new(child));
	} else if (op < 14) { /* kill a slot */
		replace(&objs[rn(t, NSLOT)], NULL);
	} else if (op < 22) { /* hold / drop a strong ref */
		wref_release(t->strong[i]);
		t->strong[i] = rn(t, 2) ? any_obj(t) : NULL;
		if (t->strong[i]) {
			check_alive(t->strong[i]);
			void *x = wref_retain(t->strong[i]);
			CHECK(wref_strong_count(x) >= 2);
			CHECK(wref_type_of(x) == &tobj_type);
			wref_release(x);
		}
	} else if (op < 30) { /* shared weak ref */
		wref_release(t->refs[i]);
		t->refs[i] = NULL;
		if ((o = any_obj(t))) {
			t->refs[i] = wref_ref_new(o, NULL, NULL);
			CHECK(t->refs[i]);
			CHECK(wref_ref_get(t->refs[i]) == o);
			wref_release(o); /* the get */
			wref_release(o);
		}
	} else if (op < 48) { /* upgrade */
		wref_ref *r = t->refs[i] ? t->refs[i] : t->cbr[i].r;
		if (r && (o = wref_ref_get(r))) {
			check_alive(o);
			CHECK(wref_ref_alive(r));
			wref_release(o);
		}
	} else if (op < 52) { /* proxy call */
		if (t->refs[i]) {
			int rc = wref_ref_call(t->refs[i], call_fn, NULL);
			CHECK(rc == 5 || rc == -ENOENT);
		}
	} else if (op < 60) { /* callback ref */
		op_cbref(t, i);
	} else if (op < 66) { /* WeakMethod */
		if (t->meth[i] && rn(t, 2)) {
			int rc = wref_method_call(t->meth[i], NULL);
			CHECK(rc == 0 || rc == -ENOENT);
		} else {
			wref_release(t->meth[i]);
			t->meth[i] = NULL;
			if ((o = any_obj(t))) {
				t->meth[i] = wref_method_new(o, method_fn);
				CHECK(t->meth[i]);
				CHECK(wref_method_call(t->meth[i], NULL) == 0);
				wref_release(o);
			}
		}
	} else if (op < 72) { /* finalize */
		op_fin(t, i);
	} else if (op < 86) { /* signals */
		op_signal(t);
	} else if (op < 92) { /* introspection */
		if ((o = any_obj(t))) {
			wref_ref *out[4];
			size_t n = wref_weak_refs(o, out, 4);
			for (size_t k = 0; k < n && k < 4; k++) {
				void *g = wref_ref_get(out[k]);
				CHECK(g == o);
				wref_release(g);
				wref_release(out[k]);
			}
			(void)wref_weak_count(o);
			wref_release(o);
		}
	} else if (op < 93) {
		if (rn(t, 8) == 0)
			CHECK(wref_flush() == 0);
	} else if (op < 100) {
		/* release the thread's cb ref (maybe after seeing death) */
		drop_cbref(&t->cbr[i]);
	} else if (op < 110) {
		op_valmap(t);
	} else if (op < 117) {
		op_keymap(t);
	} else {
		op_set(t);
	}
	t->ops++;
}

static void thr_cleanup(struct thr *t)
{
	for (int i = 0; i < NLOC; i++) {
		wref_release(t->strong[i]);
		wref_release(t->refs[i]);
		drop_cbref(&t->cbr[i]);
		wref_release(t->meth[i]);
		wref_release(t->fin[i]); /* stays armed */
	}
}

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		for (int k = 0; k < 64; k++) {
			one_op(t);
			atomic_fetch_add_explicit(&t->qs, 1,
						  memory_order_release);
		}
	thr_cleanup(t);
	atomic_store(&t->done, true);
	return NULL;
}


/* ---- fork and exit (-f) ----------------------------------------------------------
 * The main thread forks while the workers are mid-operation and callbacks
 * are queued.  The child (only the forking thread survives) runs what the
 * parent had queued, uses the library on fresh objects, then exits with
 * callbacks queued and at-exit finalizers armed; each of those reports
 * through a pipe, and the parent checks that each ran exactly once and that
 * the child neither hung nor failed. */

#if defined(__SANITIZE_ADDRESS__)
#define TORTURE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TORTURE_ASAN 1
#endif
#endif

#define CHILD_KILLED 8
#define CHILD_KEPT 8
static int child_pipe = -1;
static _Atomic int child_cbs;

static void child_cb(wref_ref *r, void *arg)
{
	(void)r;
	(void)arg;
	atomic_fetch_add(&child_cbs, 1);
}
static void child_cb_pipe(wref_ref *r, void *arg)
{
	(void)r;
	(void)arg;
	if (write(child_pipe, "c", 1) != 1)
		_exit(3);
}
static void child_fin_pipe(void *arg)
{
	(void)arg;
	if (write(child_pipe, "f", 1) != 1)
		_exit(3);
}

static void child_main(void)
{
	alarm(60); /* a hang fails the parent's check */
	CHECK(wref_flush() == 0); /* the parent's queued callbacks ran */
	void *o[64];
	wref_ref *r[64];
	for (int i = 0; i < 64; i++) {
		o[i] = tobj_new(NULL);
		r[i] = wref_ref_new(o[i], child_cb, NULL);
		CHECK(r[i]);
	}
	wref_valmap *m = wref_valmap_new(NULL);
	CHECK(m);
	for (uint64_t i = 0; i < 64; i++)
		CHECK(wref_valmap_set(m, &i, sizeof i, o[i]) == 0);
	CHECK(wref_valmap_len(m) == 64);
	for (int i = 0; i < 64; i++)
		wref_release(o[i]);
	CHECK(wref_flush() == 0);
	CHECK(atomic_load(&child_cbs) == 64);
	CHECK(wref_valmap_len(m) == 0);
	for (int i = 0; i < 64; i++)
		wref_release(r[i]);
	wref_release(m);

	/* exit with callbacks queued and at-exit finalizers armed */
	void *k[CHILD_KILLED + CHILD_KEPT];
	for (int i = 0; i < CHILD_KILLED + CHILD_KEPT; i++) {
		k[i] = tobj_new(NULL);
		CHECK(wref_ref_new(k[i], child_cb_pipe, NULL));
		CHECK(wref_finalize(k[i], child_fin_pipe, NULL,
				    WREF_FIN_ATEXIT));
	}
	for (int i = 0; i < CHILD_KILLED; i++)
		wref_release(k[i]); /* callbacks and finalizers queued */
#ifdef TORTURE_ASAN
	/* the workers' pinned objects are gone with their threads: leave
	 * without LeakSanitizer's at-exit check, through the same drain */
	wref_shutdown();
	_exit(0);
#else
	exit(0); /* the library's at-exit drain runs them */
#endif
}

static long forks_done;

static void fork_once(void)
{
	int fds[2];
	CHECK(pipe(fds) == 0);
	fflush(NULL);
	pid_t pid = fork(); /* workers mid-operation, some in wref_flush */
	CHECK(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_pipe = fds[1];
		child_main();
	}
	close(fds[1]);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	char buf[256];
	int c = 0, f = 0;
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof buf)) > 0)
		for (ssize_t i = 0; i < n; i++) {
			c += buf[i] == 'c';
			f += buf[i] == 'f';
		}
	close(fds[0]);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("forked child: status %#x%s", st,
		     WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM ? " (hung)"
								: "");
	if (c != CHILD_KILLED || f != CHILD_KILLED + CHILD_KEPT)
		FAIL("forked child: %d callbacks (want %d), %d finalizers "
		     "(want %d) at exit", c, CHILD_KILLED, f,
		     CHILD_KILLED + CHILD_KEPT);
	forks_done++;
}

/* the limbo lock may be held by the executor at the fork */
static void limbo_prepare(void)
{
	pthread_mutex_lock(&limbo_mu);
}
static void limbo_after(void)
{
	pthread_mutex_unlock(&limbo_mu);
}

/* ---- main ------------------------------------------------------------------------- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* flush until nothing more is queued (handle finalizers queue after the
 * callbacks whose handles they watch) and grace periods have passed */
static void drain(void)
{
	struct wref_stats a, b;
	do {
		CHECK(wref_flush() == 0);
		urcu_bp_barrier();
		wref_stats(&a);
		CHECK(wref_flush() == 0);
		urcu_bp_barrier();
		wref_stats(&b);
	} while (a.callbacks_queued != b.callbacks_queued ||
		 b.callbacks_queued != b.callbacks_run ||
		 a.objects_live != b.objects_live ||
		 a.blocks_live != b.blocks_live);
}

int main(int argc, char **argv)
{
	double secs = 3;
	long nthreads = 0;
	int opt;
	bool inl = false;
	double fork_every = 0.5; /* seconds; 0 = no forks */
#ifdef WREF_TSAN
	fork_every = 0; /* TSan cannot run threads in a child of a threaded
			   process */
#endif
	const char *sc = getenv("WREF_STRESS_SCALE");
	if (sc && *sc)
		secs *= atof(sc);
	while ((opt = getopt(argc, argv, "s:t:ikf:")) != -1) {
		switch (opt) {
		case 's':
			secs = atof(optarg);
			break;
		case 't':
			nthreads = atol(optarg);
			break;
		case 'i':
			inl = true;
			break;
		case 'k':
			known_lost_cb = true;
			break;
		case 'f':
			fork_every = atof(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-s SECONDS] [-t THREADS] "
				"[-i] [-k] [-f FORK_EVERY_S] [SEED]\n", argv[0]);
			return 2;
		}
	}
	if (nthreads <= 0)
		nthreads = 2 * sysconf(_SC_NPROCESSORS_ONLN);
	if (nthreads <= 0)
		nthreads = 4;
	if (optind < argc)
		seed = strtoull(argv[optind], NULL, 0);
	else
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if (inl) {
		wref_config c = { .exec_mode = WREF_EXEC_INLINE };
		CHECK(wref_init(&c) == 0);
	}
	printf("torture: seed %llu, %ld threads, %.1f s%s\n",
	       (unsigned long long)seed, nthreads, secs,
	       inl ? ", inline executor" : "");
	fflush(stdout);

	struct wref_stats s0;
	wref_stats(&s0);
	for (int i = 0; i < NSLOT; i++)
		pthread_mutex_init(&objs[i].mu, NULL);
	for (int i = 0; i < NSIGS; i++)
		pthread_mutex_init(&sigs[i].mu, NULL);
	for (int i = 0; i < NCONT; i++) {
		pthread_mutex_init(&vmaps[i].mu, NULL);
		pthread_mutex_init(&kmaps[i].mu, NULL);
		pthread_mutex_init(&wsets[i].mu, NULL);
	}

	struct thr *th = calloc(nthreads, sizeof *th);
	CHECK(th);
	double t0 = now();
	for (long i = 0; i < nthreads; i++) {
		th[i].rng = (seed + 1) * UINT64_C(0x9e3779b97f4a7c15) + i + 1;
		CHECK(pthread_create(&th[i].tid, NULL, thr_main, &th[i]) == 0);
	}
	uint64_t *qs = calloc(nthreads, sizeof *qs);
	CHECK(qs);
	pthread_atfork(limbo_prepare, limbo_after, limbo_after);
	double next_fork = t0 + fork_every;
	while (now() - t0 < secs) {
		usleep(100000);
		if (fork_every > 0 && !inl && now() >= next_fork) {
			fork_once();
			next_fork = now() + fork_every;
		}
		/* resolve the records parked so far (see rec_resolve) */
		struct limbo *batch = limbo_take();
		for (long i = 0; i < nthreads; i++)
			qs[i] = atomic_load(&th[i].qs);
		for (long i = 0; i < nthreads; i++)
			while (atomic_load(&th[i].qs) == qs[i] &&
			       !atomic_load(&th[i].done))
				usleep(100);
		CHECK(wref_flush() == 0);
		CHECK(wref_flush() == 0);
		limbo_final(batch);
	}
	free(qs);
	atomic_store(&stop, true);
	uint64_t ops = 0;
	for (long i = 0; i < nthreads; i++) {
		pthread_join(th[i].tid, NULL);
		ops += th[i].ops;
	}
	double dt = now() - t0;

	/* release everything; every object dies */
	for (int i = 0; i < NSLOT; i++)
		replace(&objs[i], NULL);
	for (int i = 0; i < NSIGS; i++)
		replace(&sigs[i], NULL);
	for (int i = 0; i < NCONT; i++) {
		replace(&vmaps[i], NULL);
		replace(&kmaps[i], NULL);
		replace(&wsets[i], NULL);
	}
	drain();
	limbo_final(limbo_take());

	struct wref_stats s;
	wref_stats(&s);
	printf("torture: %llu ops in %.2f s = %.0f ops/s; %ld forks; objects "
	       "%llu created, callbacks %llu run, finalizers %llu made / %llu run "
	       "/ %llu detached, %llu method calls, %llu subscriber calls\n",
	       (unsigned long long)ops, dt, ops / dt, forks_done,
	       (unsigned long long)atomic_load(&n_created),
	       (unsigned long long)atomic_load(&cb_runs),
	       (unsigned long long)atomic_load(&fin_made),
	       (unsigned long long)atomic_load(&fin_ran),
	       (unsigned long long)atomic_load(&fin_detached),
	       (unsigned long long)atomic_load(&meth_calls),
	       (unsigned long long)atomic_load(&sub_calls));
	CHECK(atomic_load(&n_destroyed) == atomic_load(&n_created));
	CHECK(atomic_load(&recs_done) == atomic_load(&recs_made));
	CHECK(atomic_load(&fin_ran) + atomic_load(&fin_detached) ==
	      atomic_load(&fin_made));
	if (s.objects_live != s0.objects_live)
		FAIL("objects_live %llu, want %llu",
		     (unsigned long long)s.objects_live,
		     (unsigned long long)s0.objects_live);
	if (s.blocks_live != s0.blocks_live)
		FAIL("blocks_live %llu, want %llu",
		     (unsigned long long)s.blocks_live,
		     (unsigned long long)s0.blocks_live);
	if (atomic_load(&cb_lost))
		printf("torture: %llu callback(s) of refs held at death lost "
		       "(tolerated by -k)\n",
		       (unsigned long long)atomic_load(&cb_lost));
	free(th);
	printf("torture: PASS (seed %llu)\n", (unsigned long long)seed);
	return 0;
}
