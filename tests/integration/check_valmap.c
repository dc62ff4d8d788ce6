/*
 * check_valmap.c - the weak-value map: every call and error, prompt
 * removal, replace vs old death, keys of length 0 and 1 MiB, foreach
 * modifying the map, get_or_create (plain and CREATE_ONCE), the retention
 * tier under a controllable clock, teardown while others hold objects,
 * the entry embedded in a new block.
 */
#include "containers_test.h"

#include <sched.h>
#include <sys/wait.h>

static struct wref_stats start;

static void setup(void)
{
	start = ct_stats();
}

/* ---- basics ---------------------------------------------------------- */

START_TEST(test_new_errors)
{
	wref_map_options bad = { .flags = 0x100 };
	errno = 0;
	ck_assert_ptr_null(wref_valmap_new(&bad));
	ck_assert_int_eq(errno, EINVAL);
	wref_valmap *m = wref_valmap_new(NULL);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref_release(m);
	wref_map_options big = { .initial_size = 5000 };
	m = wref_valmap_new(&big);
	ck_assert_ptr_nonnull(m);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_arg_errors)
{
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *a = item_new(&item_type, 1, NULL);
	struct item *nw = item_new(&noweak_type, 2, NULL);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get(NULL, "k", 1));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get(m, NULL, 1));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(wref_valmap_set(NULL, "k", 1, a), -EINVAL);
	ck_assert_int_eq(wref_valmap_set(m, NULL, 3, a), -EINVAL);
	ck_assert_int_eq(wref_valmap_set(m, "k", 1, NULL), -EINVAL);
	ck_assert_int_eq(wref_valmap_set(m, "k", 1, nw), -EINVAL);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_pop(m, NULL, 2));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(wref_valmap_del(NULL, "k", 1), -EINVAL);
	ck_assert_int_eq(wref_valmap_del(m, NULL, 1), -EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get_or_create(m, "k", 1, NULL, NULL));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get_or_create(NULL, "k", 1, NULL, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(wref_valmap_foreach(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(wref_valmap_foreach(m, NULL, NULL), -EINVAL);
	ck_assert_uint_eq(wref_valmap_len(NULL), 0);
	wref_valmap_clear(NULL);
	wref_release(a);
	wref_release(nw);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_set_get_del)
{
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *a = item_new(&item_type, 1, NULL);
	struct item *b = item_new(&item_type, 2, NULL);
	ck_assert_int_eq(wref_valmap_set(m, "alpha", 5, a), 0);
	ck_assert_int_eq(wref_valmap_set(m, "beta", 4, b), 0);
	ck_assert_uint_eq(wref_valmap_len(m), 2);
	ck_assert_uint_eq(wref_strong_count(a), 1); /* held weakly */
	struct item *g = wref_valmap_get(m, "alpha", 5);
	ck_assert_ptr_eq(g, a);
	ck_assert_uint_eq(wref_strong_count(a), 2);
	wref_release(g);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get(m, "alph", 4));
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_null(wref_valmap_get(m, "alphaX", 6));
	ck_assert_int_eq(wref_valmap_del(m, "alpha", 5), 0);
	ck_assert_int_eq(wref_valmap_del(m, "alpha", 5), -ENOENT);
	ck_assert_ptr_null(wref_valmap_get(m, "alpha", 5));
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	ck_assert_uint_eq(wref_strong_count(a), 1); /* del does not kill */
	/* pop returns a strong ref */
	g = wref_valmap_pop(m, "beta", 4);
	ck_assert_ptr_eq(g, b);
	ck_assert_uint_eq(wref_strong_count(b), 2);
	wref_release(g);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_pop(m, "beta", 4));
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	/* an object may be under several keys */
	ck_assert_int_eq(wref_valmap_set(m, "x", 1, a), 0);
	ck_assert_int_eq(wref_valmap_set(m, "y", 1, a), 0);
	ck_assert_uint_eq(wref_valmap_len(m), 2);
	wref_release(a); /* both entries go at once */
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref_release(b);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_prompt_removal)
{
	_Atomic int d = 0;
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *a = item_new(&item_type, 1, &d);
	ck_assert_int_eq(wref_valmap_set(m, "k", 1, a), 0);
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	wref_release(a);
	/* no flush, no later traffic: gone as soon as the release returns */
	ck_assert_int_eq(atomic_load(&d), 1);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	ck_assert_ptr_null(wref_valmap_get(m, "k", 1));
	ck_assert_int_eq(wref_valmap_del(m, "k", 1), -ENOENT);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_pop(m, "k", 1));
	ck_assert_int_eq(errno, ENOENT);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* one object watched by many entries and callback refs (the watch list is
 * singly linked: removals at its head, middle and tail, then one death
 * collects the rest in batches) */
static void count_cb(wref_ref *r, void *arg)
{
	(void)r;
	atomic_fetch_add((_Atomic int *)arg, 1);
}

START_TEST(test_many_watches_one_object)
{
	enum { N = 300, NREF = 40 };
	_Atomic int d = 0, fired = 0;
	wref_valmap *m = wref_valmap_new(NULL), *m2 = wref_valmap_new(NULL);
	struct item *a = item_new(&item_type, 1, &d);
	wref_ref *refs[NREF];
	char k[16];
	int nr = 0;
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof k, "key%d", i);
		ck_assert_int_eq(wref_valmap_set(m, k, strlen(k), a), 0);
		if (i % 2 == 0)
			ck_assert_int_eq(wref_valmap_set(m2, k, strlen(k), a),
					 0);
		if (i % (N / NREF) == 0 && nr < NREF)
			refs[nr++] = wref_ref_new(a, count_cb, &fired);
	}
	ck_assert_int_eq(nr, NREF);
	ck_assert_uint_eq(wref_weak_count(a), NREF);
	/* newest (list head), oldest (tail) and every third in between */
	for (int i = N - 1; i >= 0; i -= 3) {
		snprintf(k, sizeof k, "key%d", i);
		ck_assert_int_eq(wref_valmap_del(m, k, strlen(k)), 0);
	}
	snprintf(k, sizeof k, "key%d", 0);
	ck_assert_int_eq(wref_valmap_del(m, k, strlen(k)), 0);
	/* cancel every other callback ref (unlinked from the middle) */
	for (int i = 0; i < NREF; i += 2) {
		wref_release(refs[i]);
		refs[i] = NULL;
	}
	ck_assert_uint_eq(wref_weak_count(a), NREF / 2);
	size_t left = 0;
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof k, "key%d", i);
		void *o = wref_valmap_get(m, k, strlen(k));
		bool gone = (N - 1 - i) % 3 == 0 || i == 0;
		ck_assert(gone ? o == NULL : o == a);
		left += !gone;
		wref_release(o);
	}
	ck_assert_uint_eq(wref_valmap_len(m), left);
	ck_assert_uint_eq(wref_valmap_len(m2), N / 2);
	wref_release(a);
	/* every remaining entry of both maps removed before the release
	 * returns */
	ck_assert_int_eq(atomic_load(&d), 1);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	ck_assert_uint_eq(wref_valmap_len(m2), 0);
	wref_flush();
	ck_assert_int_eq(atomic_load(&fired), NREF / 2);
	for (int i = 0; i < NREF; i++)
		wref_release(refs[i]);
	wref_release(m);
	wref_release(m2);
	ct_assert_no_leak(start);
}
END_TEST

/* the table grows to load 1-2 on inserts and shrinks back (not below its
 * initial size) once removals take it under an eighth of its buckets */
START_TEST(test_resize_both_ways)
{
	enum { N = 5000 };
	wref_valmap *m = wref_valmap_new(NULL);
	struct wref__table *t = (struct wref__table *)(void *)m;
	struct item *a = item_new(&item_type, 1, NULL);
	char k[16];
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof k, "key%d", i);
		ck_assert_int_eq(wref_valmap_set(m, k, strlen(k), a), 0);
	}
	wref_flush(); /* the resize runs on the executor */
	ck_assert_uint_eq(atomic_load(&t->buckets), 4096);
	for (int i = 10; i < N; i++) {
		snprintf(k, sizeof k, "key%d", i);
		ck_assert_int_eq(wref_valmap_del(m, k, strlen(k)), 0);
	}
	wref_flush();
	/* load >= 1/8 once shrunk (10 entries: <= 64 buckets; 128 if the
	 * last removal's check met the previous resize still finishing) */
	ck_assert_uint_le(atomic_load(&t->buckets), 128);
	ck_assert_uint_ge(atomic_load(&t->buckets), t->min_buckets);
	ck_assert_uint_eq(wref_valmap_len(m), 10);
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof k, "key%d", i);
		void *o = wref_valmap_get(m, k, strlen(k));
		ck_assert(i < 10 ? o == a : o == NULL);
		wref_release(o);
	}
	wref_release(a);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_replace_then_old_dies)
{
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *a = item_new(&item_type, 1, NULL);
	struct item *b = item_new(&item_type, 2, NULL);
	ck_assert_int_eq(wref_valmap_set(m, "k", 1, a), 0);
	ck_assert_int_eq(wref_valmap_set(m, "k", 1, b), 0);
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	wref_release(a); /* the old value's death must not remove b */
	struct item *g = wref_valmap_get(m, "k", 1);
	ck_assert_ptr_eq(g, b);
	wref_release(g);
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	/* same object again: still one entry */
	ck_assert_int_eq(wref_valmap_set(m, "k", 1, b), 0);
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	wref_release(b);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_key_lengths)
{
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *a = item_new(&item_type, 1, NULL);
	struct item *b = item_new(&item_type, 2, NULL);
	struct item *c = item_new(&item_type, 3, NULL);
	/* a zero-length key is a key (NULL or not) */
	ck_assert_int_eq(wref_valmap_set(m, NULL, 0, a), 0);
	struct item *g = wref_valmap_get(m, "", 0);
	ck_assert_ptr_eq(g, a);
	wref_release(g);
	/* one byte keys, including NUL */
	ck_assert_int_eq(wref_valmap_set(m, "\0", 1, b), 0);
	g = wref_valmap_get(m, "\0", 1);
	ck_assert_ptr_eq(g, b);
	wref_release(g);
	/* 1 MiB keys differing in the last byte */
	size_t n = 1 << 20;
	unsigned char *k1 = malloc(n), *k2 = malloc(n);
	for (size_t i = 0; i < n; i++)
		k1[i] = k2[i] = (unsigned char)(i * 7);
	k2[n - 1] ^= 1;
	ck_assert_int_eq(wref_valmap_set(m, k1, n, c), 0);
	ck_assert_ptr_null(wref_valmap_get(m, k2, n));
	g = wref_valmap_get(m, k1, n);
	ck_assert_ptr_eq(g, c);
	wref_release(g);
	k1[0] ^= 1; /* the key was copied */
	ck_assert_ptr_null(wref_valmap_get(m, k1, n));
	k1[0] ^= 1;
	ck_assert_uint_eq(wref_valmap_len(m), 3);
	ck_assert_int_eq(wref_valmap_del(m, NULL, 0), 0);
	ck_assert_int_eq(wref_valmap_del(m, k1, n), 0);
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	free(k1);
	free(k2);
	wref_release(a);
	wref_release(b);
	wref_release(c);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* keys of every length from 0 to 40 in a plain map, a map with a
 * retention tier and a CREATE_ONCE map: an entry's layout (the key, the
 * header hint after it when the allocator's 16-byte rounding leaves room,
 * the tier or placeholder part after that) depends on the length.  In the
 * plain map each hint names its object's header (white box: valmap.c's
 * layout, VM_KEY = 48) */
static void *make_item(const void *key, size_t len, void *arg);
static void *make_fail(const void *key, size_t len, void *arg);

static void key_of_len(unsigned char *k, size_t len, unsigned char last)
{
	for (size_t i = 0; i < len; i++)
		k[i] = (unsigned char)(i * 13 + len);
	if (len)
		k[len - 1] = last;
}

START_TEST(test_key_length_layouts)
{
	enum { MAXLEN = 40 };
	wref_map_options ret = { .retain_ms = 1000000 };
	wref_map_options once = { .flags = WREF_MAP_CREATE_ONCE };
	wref_valmap *maps[3] = { wref_valmap_new(NULL), wref_valmap_new(&ret),
				 wref_valmap_new(&once) };
	struct item *v[3][MAXLEN + 1];
	unsigned char k[MAXLEN], k2[MAXLEN];
	for (int mi = 0; mi < 3; mi++) {
		for (size_t len = 0; len <= MAXLEN; len++) {
			key_of_len(k, len, 0xa5);
			if (mi == 2) {
				v[mi][len] = wref_valmap_get_or_create(maps[mi],
						k, len, make_item, NULL);
				ck_assert_ptr_nonnull(v[mi][len]);
			} else {
				v[mi][len] = item_new(&item_type, len, NULL);
				ck_assert_int_eq(wref_valmap_set(maps[mi], k,
						len, v[mi][len]), 0);
			}
		}
		ck_assert_uint_eq(wref_valmap_len(maps[mi]), MAXLEN + 1);
		for (size_t len = 0; len <= MAXLEN; len++) {
			key_of_len(k, len, 0xa5);
			key_of_len(k2, len, 0x5a);
			struct item *g = wref_valmap_get(maps[mi], k, len);
			ck_assert_ptr_eq(g, v[mi][len]);
			wref_release(g);
			g = wref_valmap_get_or_create(maps[mi], k, len,
						      make_fail, NULL);
			ck_assert_ptr_eq(g, v[mi][len]);
			wref_release(g);
			if (len)
				ck_assert_ptr_null(wref_valmap_get(maps[mi],
								   k2, len));
		}
	}
	/* the plain map's hints */
	struct wref__table *t = (struct wref__table *)(void *)maps[0];
	struct cds_lfht_iter it;
	int hinted = 0;
	wref__rcu_lock();
	for (struct wref__entry *e = wref__table_first(t, &it); e;
	     e = wref__table_next(t, &it)) {
		size_t len = e->aux, end = 48 + len;
		size_t off = (end + 3) & ~(size_t)3;
		if (off + 4 > ((end + 15) & ~(size_t)15))
			continue; /* no room: no hint */
		int32_t h;
		memcpy(&h, (char *)e + off, 4);
		/* 0: the offset did not fit in 32 bits of 16-byte units (the
		 * sanitizers' heaps are that far apart) */
		if (h)
			ck_assert_ptr_eq((char *)e + 16 * (intptr_t)h,
					 (char *)e->cb->mem);
		hinted++;
	}
	wref__rcu_unlock();
	/* lengths 1..12 and 17..28 mod 16 of 0..40: 12 + 12 + 8 */
	ck_assert_int_eq(hinted, 32);
	for (int mi = 0; mi < 3; mi++) {
		for (size_t len = 0; len <= MAXLEN; len++) {
			key_of_len(k, len, 0xa5);
			ck_assert_int_eq(wref_valmap_del(maps[mi], k, len), 0);
			wref_release(v[mi][len]);
		}
		ck_assert_uint_eq(wref_valmap_len(maps[mi]), 0);
		wref_release(maps[mi]);
	}
	wref_flush();
	ct_assert_no_leak(start);
}
END_TEST

/* the length is split over per-CPU slots: it stays exact when threads
 * (on whatever CPUs they land) insert and remove, and one thread's
 * removals of another's inserts take it back to 0 */
struct len_ctx {
	wref_valmap *m;
	struct item *o;
	int base, n;
	bool del;
};

static void *len_worker(void *p)
{
	struct len_ctx *c = p;
	char k[32];
	for (int i = 0; i < c->n; i++) {
		snprintf(k, sizeof k, "len%d", c->base + i);
		if (c->del)
			ck_assert_int_eq(wref_valmap_del(c->m, k, strlen(k)), 0);
		else
			ck_assert_int_eq(wref_valmap_set(c->m, k, strlen(k),
							 c->o), 0);
		if (i % 64 == 0)
			sched_yield(); /* move around the CPUs */
	}
	return NULL;
}

START_TEST(test_len_split)
{
	enum { T = 4, N = 3000 };
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *o = item_new(&item_type, 1, NULL);
	pthread_t th[T];
	struct len_ctx c[T];
	for (int del = 0; del < 2; del++) {
		for (int i = 0; i < T; i++) {
			/* removers take the keys of another inserter */
			c[i] = (struct len_ctx){ m, o, ((i + del) % T) * N, N,
						 del };
			pthread_create(&th[i], NULL, len_worker, &c[i]);
		}
		for (int i = 0; i < T; i++)
			pthread_join(th[i], NULL);
		ck_assert_uint_eq(wref_valmap_len(m), del ? 0 : T * N);
		wref_flush();
		struct wref__table *t = (struct wref__table *)(void *)m;
		/* grown to load 1-2 (8192 buckets for 12000), then shrunk */
		if (!del)
			ck_assert_uint_eq(atomic_load(&t->buckets), 8192);
		else
			ck_assert_uint_le(atomic_load(&t->buckets), 128);
	}
	wref_release(o);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_clear)
{
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *v[200];
	for (int i = 0; i < 200; i++) {
		v[i] = item_new(&item_type, (uint64_t)i, NULL);
		ck_assert_int_eq(wref_valmap_set(m, &i, sizeof i, v[i]), 0);
	}
	ck_assert_uint_eq(wref_valmap_len(m), 200);
	wref_valmap_clear(m);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	for (int i = 0; i < 200; i++) {
		ck_assert_ptr_null(wref_valmap_get(m, &i, sizeof i));
		ck_assert_uint_eq(wref_strong_count(v[i]), 1);
		wref_release(v[i]);
	}
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- foreach ---------------------------------------------------------- */

struct fe {
	wref_valmap *m;
	int seen, stop_at;
	struct item *extra;
	uint64_t sum;
};

static int fe_count(const void *key, size_t len, void *obj, void *arg)
{
	struct fe *f = arg;
	struct item *it = obj;
	ck_assert_uint_eq(len, sizeof(int));
	int k;
	memcpy(&k, key, sizeof k);
	ck_assert_uint_eq((uint64_t)k, it->id);
	ck_assert_uint_ge(wref_strong_count(obj), 2); /* pinned */
	f->seen++;
	f->sum += it->id;
	return f->stop_at && f->seen == f->stop_at ? 42 : 0;
}

static int fe_modify(const void *key, size_t len, void *obj, void *arg)
{
	struct fe *f = arg;
	/* delete what we visit, insert something new, drop last refs */
	ck_assert_int_eq(wref_valmap_del(f->m, key, len), 0);
	ck_assert_int_eq(wref_valmap_set(f->m, "new", 3, f->extra), 0);
	wref_release(obj); /* the caller gave us its ref below */
	f->seen++;
	return 0;
}

START_TEST(test_foreach)
{
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *v[50];
	uint64_t sum = 0;
	for (int i = 0; i < 50; i++) {
		v[i] = item_new(&item_type, (uint64_t)i, NULL);
		sum += (uint64_t)i;
		ck_assert_int_eq(wref_valmap_set(m, &i, sizeof i, v[i]), 0);
	}
	struct fe f = { .m = m };
	ck_assert_int_eq(wref_valmap_foreach(m, fe_count, &f), 0);
	ck_assert_int_eq(f.seen, 50);
	ck_assert_uint_eq(f.sum, sum);
	/* a non-zero return stops and is returned */
	f = (struct fe){ .m = m, .stop_at = 7 };
	ck_assert_int_eq(wref_valmap_foreach(m, fe_count, &f), 42);
	ck_assert_int_eq(f.seen, 7);
	/* dead entries are not visited */
	wref_release(v[3]);
	v[3] = NULL;
	f = (struct fe){ .m = m };
	ck_assert_int_eq(wref_valmap_foreach(m, fe_count, &f), 0);
	ck_assert_int_eq(f.seen, 49);
	/* fn may modify the map and release the last ref of what it sees:
	 * here we hand our refs over to fn, which releases them */
	f = (struct fe){ .m = m, .extra = item_new(&item_type, 99, NULL) };
	for (int i = 0; i < 50; i++)
		v[i] = NULL;
	ck_assert_int_eq(wref_valmap_foreach(m, fe_modify, &f), 0);
	ck_assert_int_eq(f.seen, 49);
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	wref_release(f.extra);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* the last ref of the map itself dropped inside its foreach */
static int fe_release_map(const void *key, size_t len, void *obj, void *arg)
{
	wref_valmap **mp = arg;
	if (*mp) {
		wref_release(*mp);
		*mp = NULL;
	}
	return 0;
}

START_TEST(test_foreach_releases_map)
{
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *a = item_new(&item_type, 1, NULL);
	struct item *b = item_new(&item_type, 2, NULL);
	wref_valmap_set(m, "a", 1, a);
	wref_valmap_set(m, "b", 1, b);
	wref_valmap *hold = wref_retain(m);
	wref_valmap *arg = m;
	ck_assert_int_eq(wref_valmap_foreach(hold, fe_release_map, &arg), 0);
	wref_release(hold); /* the map dies here, after the walk */
	ck_assert_uint_eq(wref_strong_count(a), 1);
	wref_release(a);
	wref_release(b);
	ct_assert_no_leak(start);
}
END_TEST

/* issue 16 item 1: the map's only ref released by fn: the walk keeps the
 * map alive until its last entry hold is dropped.  The old walk read the
 * table ops through the freed map (ASan heap-use-after-free, every run). */
START_TEST(test_foreach_releases_last_ref)
{
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *a = item_new(&item_type, 1, NULL);
	struct item *b = item_new(&item_type, 2, NULL);
	wref_valmap_set(m, "a", 1, a);
	wref_valmap_set(m, "b", 1, b);
	wref_valmap *arg = m;
	ck_assert_int_eq(wref_valmap_foreach(m, fe_release_map, &arg), 0);
	ck_assert_ptr_null(arg);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(wref_strong_count(a), 1);
	ck_assert_uint_eq(wref_strong_count(b), 1);
	wref_release(a);
	wref_release(b);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- get_or_create ------------------------------------------------------ */

static _Atomic int makes;

static void *new_item(const void *key, size_t len)
{
	struct item *it = wref_new(&item_type, sizeof *it);
	if (it && len >= sizeof(int)) {
		int k;
		memcpy(&k, key, sizeof k);
		it->id = (uint64_t)k;
	}
	return it;
}

static void *make_item(const void *key, size_t len, void *arg)
{
	atomic_fetch_add(&makes, 1);
	return new_item(key, len);
}

static void *make_fail(const void *key, size_t len, void *arg)
{
	atomic_fetch_add(&makes, 1);
	errno = EIO;
	return NULL;
}

static void *make_noweak(const void *key, size_t len, void *arg)
{
	return wref_new(&noweak_type, 8);
}

START_TEST(test_get_or_create)
{
	wref_map_options o = { .flags = (unsigned)_i ? WREF_MAP_CREATE_ONCE
						     : 0 };
	wref_valmap *m = wref_valmap_new(&o);
	atomic_store(&makes, 0);
	int k = 5;
	struct item *a = wref_valmap_get_or_create(m, &k, sizeof k, make_item,
						   NULL);
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq(a->id, 5);
	ck_assert_int_eq(atomic_load(&makes), 1);
	ck_assert_uint_eq(wref_strong_count(a), 1);
	struct item *b = wref_valmap_get_or_create(m, &k, sizeof k, make_item,
						   NULL);
	ck_assert_ptr_eq(a, b);
	ck_assert_int_eq(atomic_load(&makes), 1);
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	wref_release(b);
	wref_release(a);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	/* the dead value is replaced by a new one */
	a = wref_valmap_get_or_create(m, &k, sizeof k, make_item, NULL);
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(atomic_load(&makes), 2);
	/* set wins over get_or_create afterwards */
	struct item *c = item_new(&item_type, 9, NULL);
	ck_assert_int_eq(wref_valmap_set(m, &k, sizeof k, c), 0);
	b = wref_valmap_get_or_create(m, &k, sizeof k, make_item, NULL);
	ck_assert_ptr_eq(b, c);
	wref_release(b);
	/* make's failure: errno as make left it */
	int k2 = 6;
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get_or_create(m, &k2, sizeof k2,
						     make_fail, NULL));
	ck_assert_int_eq(errno, EIO);
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	ck_assert_ptr_null(wref_valmap_get(m, &k2, sizeof k2));
	/* make returning a NO_WEAK object: EINVAL, object released */
	errno = 0;
	ck_assert_ptr_null(wref_valmap_get_or_create(m, &k2, sizeof k2,
						     make_noweak, NULL));
	ck_assert_int_eq(errno, EINVAL);
	/* zero-length key */
	b = wref_valmap_get_or_create(m, NULL, 0, make_item, NULL);
	ck_assert_ptr_nonnull(b);
	struct item *g = wref_valmap_get(m, "", 0);
	ck_assert_ptr_eq(g, b);
	wref_release(g);
	wref_release(b);
	wref_release(a);
	wref_release(c);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* CREATE_ONCE: concurrent callers; make is slow and runs once */
struct once_arg {
	wref_valmap *m;
	pthread_barrier_t *bar;
	void *(*make)(const void *, size_t, void *);
	void *got;
	int err;
};

static void *make_slow(const void *key, size_t len, void *arg)
{
	atomic_fetch_add(&makes, 1);
	usleep(50000);
	return new_item(key, len);
}

static void *make_slow_fail(const void *key, size_t len, void *arg)
{
	atomic_fetch_add(&makes, 1);
	usleep(50000);
	errno = EIO;
	return NULL;
}

static void *once_thread(void *p)
{
	struct once_arg *a = p;
	int k = 1;
	pthread_barrier_wait(a->bar);
	errno = 0;
	a->got = wref_valmap_get_or_create(a->m, &k, sizeof k, a->make, NULL);
	a->err = errno;
	return NULL;
}

START_TEST(test_create_once)
{
	enum { N = 6 };
	wref_map_options o = { .flags = WREF_MAP_CREATE_ONCE };
	wref_valmap *m = wref_valmap_new(&o);
	for (int fail = 0; fail < 2; fail++) {
		pthread_barrier_t bar;
		pthread_t th[N];
		struct once_arg a[N];
		pthread_barrier_init(&bar, NULL, N);
		atomic_store(&makes, 0);
		for (int i = 0; i < N; i++) {
			a[i] = (struct once_arg){ m, &bar,
				fail ? make_slow_fail : make_slow, NULL, 0 };
			pthread_create(&th[i], NULL, once_thread, &a[i]);
		}
		for (int i = 0; i < N; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&bar);
		/* callers arriving while make ran waited for it; the
		 * creator holds its result, so make ran once.  After a
		 * failure a late caller may try again itself (and fail) */
		if (fail)
			ck_assert_int_le(atomic_load(&makes), N);
		else
			ck_assert_int_eq(atomic_load(&makes), 1);
		for (int i = 0; i < N; i++) {
			if (fail) {
				ck_assert_ptr_null(a[i].got);
				ck_assert_int_eq(a[i].err, EIO);
			} else {
				ck_assert_ptr_eq(a[i].got, a[0].got);
			}
		}
		for (int i = 0; i < N; i++)
			wref_release(a[i].got);
		ck_assert_uint_eq(wref_valmap_len(m), 0);
	}
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* CREATE_ONCE: make asking for its own key gets EDEADLK, not a hang */
static wref_valmap *rec_map;
static int rec_err;
static void *make_recursive(const void *key, size_t len, void *arg)
{
	errno = 0;
	void *o = wref_valmap_get_or_create(rec_map, key, len, make_item,
					    NULL);
	rec_err = errno;
	wref_release(o);
	return new_item(key, len);
}

START_TEST(test_create_once_recursive)
{
	wref_map_options o = { .flags = WREF_MAP_CREATE_ONCE };
	wref_valmap *m = rec_map = wref_valmap_new(&o);
	int k = 4;
	struct item *a = wref_valmap_get_or_create(m, &k, sizeof k,
						   make_recursive, NULL);
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(rec_err, EDEADLK);
	struct item *g = wref_valmap_get(m, &k, sizeof k);
	ck_assert_ptr_eq(g, a);
	wref_release(g);
	wref_release(a);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* CREATE_ONCE: clear while make runs; the creator still returns its
 * object and inserts it */
static wref_valmap *clear_map;
static void *make_then_clear(const void *key, size_t len, void *arg)
{
	wref_valmap_clear(clear_map);
	return new_item(key, len);
}

START_TEST(test_create_once_cleared)
{
	wref_map_options o = { .flags = WREF_MAP_CREATE_ONCE };
	wref_valmap *m = clear_map = wref_valmap_new(&o);
	int k = 3;
	struct item *a = wref_valmap_get_or_create(m, &k, sizeof k,
						   make_then_clear, NULL);
	ck_assert_ptr_nonnull(a);
	struct item *g = wref_valmap_get(m, &k, sizeof k);
	ck_assert_ptr_eq(g, a);
	wref_release(g);
	/* a placeholder is not a value: del/pop/len ignore it */
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	wref_release(a);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- retention tier ------------------------------------------------------ */

START_TEST(test_retain_expiry)
{
	_Atomic int d = 0;
	atomic_store(&fake_now, 1000);
	wref__clock_set(fake_clock);
	wref_map_options o = { .retain_ms = 100 };
	wref_valmap *m = wref_valmap_new(&o);
	struct item *a = item_new(&item_type, 1, &d);
	ck_assert_int_eq(wref_valmap_set(m, "a", 1, a), 0); /* access t=1000 */
	wref_release(a); /* the tier keeps it */
	ck_assert_int_eq(atomic_load(&d), 0);
	atomic_store(&fake_now, 1099);
	wref__retain_sync();
	ck_assert_int_eq(atomic_load(&d), 0);
	struct item *g = wref_valmap_get(m, "a", 1); /* access t=1099 */
	ck_assert_ptr_eq(g, a);
	wref_release(g);
	atomic_store(&fake_now, 1150);
	wref__retain_sync();
	ck_assert_int_eq(atomic_load(&d), 0); /* 51 ms since last access */
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	atomic_store(&fake_now, 1199);
	wref__retain_sync();
	ck_assert_int_eq(atomic_load(&d), 1); /* >= 100 ms: released */
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	ck_assert_ptr_null(wref_valmap_get(m, "a", 1));
	/* get_or_create retains too */
	g = wref_valmap_get_or_create(m, "b", 1, make_item, NULL);
	ck_assert_ptr_nonnull(g);
	wref_release(g);
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	atomic_store(&fake_now, 1400);
	wref__retain_sync();
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref_release(m);
	wref__clock_set(NULL);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_retain_max_lru)
{
	_Atomic int d[4] = { 0 };
	atomic_store(&fake_now, 1);
	wref__clock_set(fake_clock);
	wref_map_options o = { .retain_ms = 1000000, .retain_max = 2 };
	wref_valmap *m = wref_valmap_new(&o);
	struct item *v[4];
	for (int i = 0; i < 3; i++) {
		v[i] = item_new(&item_type, (uint64_t)i, &d[i]);
		ck_assert_int_eq(wref_valmap_set(m, &i, sizeof i, v[i]), 0);
		wref_release(v[i]);
		atomic_fetch_add(&fake_now, 10);
	}
	/* 0 is the least recently used: dropped (after the queued trim) */
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&d[0]), 1);
	ck_assert_int_eq(atomic_load(&d[1]), 0);
	ck_assert_int_eq(atomic_load(&d[2]), 0);
	/* touch 1, insert 3: now 2 is the least recently used */
	int k = 1;
	struct item *g = wref_valmap_get(m, &k, sizeof k);
	wref_release(g);
	atomic_fetch_add(&fake_now, 10);
	k = 3;
	v[3] = item_new(&item_type, 3, &d[3]);
	ck_assert_int_eq(wref_valmap_set(m, &k, sizeof k, v[3]), 0);
	wref_release(v[3]);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&d[1]), 0);
	ck_assert_int_eq(atomic_load(&d[2]), 1);
	ck_assert_int_eq(atomic_load(&d[3]), 0);
	ck_assert_uint_eq(wref_valmap_len(m), 2);
	wref_release(m); /* releases the tier's objects (rule 14) */
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&d[1]), 1);
	ck_assert_int_eq(atomic_load(&d[3]), 1);
	wref__clock_set(NULL);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_retain_del_drops)
{
	_Atomic int d = 0;
	wref_map_options o = { .retain_ms = 1000000 };
	wref_valmap *m = wref_valmap_new(&o);
	for (int op = 0; op < 4; op++) {
		atomic_store(&d, 0);
		struct item *a = item_new(&item_type, 1, &d);
		ck_assert_int_eq(wref_valmap_set(m, "a", 1, a), 0);
		wref_release(a);
		ck_assert_int_eq(atomic_load(&d), 0);
		switch (op) {
		case 0:
			ck_assert_int_eq(wref_valmap_del(m, "a", 1), 0);
			break;
		case 1:
			wref_release(wref_valmap_pop(m, "a", 1));
			break;
		case 2:
			wref_valmap_clear(m);
			break;
		case 3: { /* replace: the old value is no longer retained */
			struct item *b = item_new(&item_type, 2, NULL);
			ck_assert_int_eq(wref_valmap_set(m, "a", 1, b), 0);
			wref_release(b);
			break;
		}
		}
		ck_assert_int_eq(atomic_load(&d), 1);
	}
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* the real clock and the timer thread: expiry needs no lookup */
START_TEST(test_retain_timer)
{
	_Atomic int d = 0;
	wref_map_options o = { .retain_ms = 20 };
	wref_valmap *m = wref_valmap_new(&o);
	struct item *a = item_new(&item_type, 1, &d);
	ck_assert_int_eq(wref_valmap_set(m, "a", 1, a), 0);
	wref_release(a);
	double t0 = ct_now();
	while (!atomic_load(&d) && ct_now() - t0 < 30)
		usleep(1000);
	ck_assert_int_eq(atomic_load(&d), 1);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* issue 16 item 7: the objects a released map's tier held are released on
 * the executor, not inside wref_release(map) on the caller's thread (the
 * old tier_kill and the teardown's forget released them right there) */
static _Atomic int rel_d;
static pthread_t rel_thread;
static void rel_destroy(void *p)
{
	(void)p;
	rel_thread = pthread_self();
	atomic_fetch_add(&rel_d, 1);
}
static const wref_type rel_type = { .name = "rel", .destroy = rel_destroy };

START_TEST(test_retain_release_map_on_executor)
{
	for (int how = 0; how < 2; how++) {
		wref_map_options o = { .retain_ms = 1000000 };
		wref_valmap *m = wref_valmap_new(&o);
		atomic_store(&rel_d, 0);
		for (int i = 0; i < 4; i++) {
			void *x = wref_new(&rel_type, 8);
			ck_assert_ptr_nonnull(x);
			ck_assert_int_eq(wref_valmap_set(m, &i, sizeof i, x),
					 0);
			if (how) /* also in the list, not only the inbox */
				wref__retain_sync();
			wref_release(x);
		}
		rel_thread = pthread_self();
		wref_release(m);
		ck_assert_int_eq(wref_flush(), 0);
		ck_assert_int_eq(atomic_load(&rel_d), 4);
		ck_assert(!pthread_equal(rel_thread, pthread_self()));
	}
	ct_assert_no_leak(start);
}
END_TEST

/* issue 16 item 13: inline mode runs no user code on the timer thread: an
 * expired object is released by the map's next call on a program thread.
 * The old timer thread ran the eviction itself (destroy on the timer
 * thread, every run). */
START_TEST(test_retain_inline_mode)
{
	wref_config cfg = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&cfg), 0);
	wref_map_options o = { .retain_ms = 5 };
	wref_valmap *m = wref_valmap_new(&o);
	atomic_store(&rel_d, 0);
	void *x = wref_new(&rel_type, 8);
	ck_assert_int_eq(wref_valmap_set(m, "x", 1, x), 0);
	wref_release(x);
	rel_thread = pthread_self();
	/* bounded: 20 s of polling (the expiry needs about 5 ms) */
	for (int i = 0; i < 20000 && !atomic_load(&rel_d); i++) {
		usleep(1000);
		(void)wref_valmap_len(m);
	}
	ck_assert_int_eq(atomic_load(&rel_d), 1);
	ck_assert(pthread_equal(rel_thread, pthread_self()));
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* suspected item: CREATE_ONCE, our placeholder cleared away during make and
 * a live value set meanwhile: the call returns that value and that access
 * refreshes its retention (the old branch skipped tier_touch, so the value
 * expired retain_ms after the set, not after our access) */
static wref_valmap *oth_map;
static struct item *oth_val;
static _Atomic int oth_d;
static void *make_then_other(const void *key, size_t len, void *arg)
{
	(void)arg;
	wref_valmap_clear(oth_map);      /* our placeholder goes */
	oth_val = item_new(&item_type, 7, &oth_d);
	ck_assert_int_eq(wref_valmap_set(oth_map, key, len, oth_val), 0);
	wref_release(oth_val);          /* only the tier holds it: t=1000 */
	atomic_store(&fake_now, 1090);  /* our access happens at t=1090 */
	return new_item(key, len);
}

START_TEST(test_create_once_other_touches)
{
	atomic_store(&fake_now, 1000);
	wref__clock_set(fake_clock);
	atomic_store(&oth_d, 0);
	wref_map_options o = { .flags = WREF_MAP_CREATE_ONCE,
			       .retain_ms = 100 };
	oth_map = wref_valmap_new(&o);
	struct item *g = wref_valmap_get_or_create(oth_map, "k", 1,
						   make_then_other, NULL);
	ck_assert_ptr_eq(g, oth_val);
	wref_release(g);
	atomic_store(&fake_now, 1150); /* 150 after the set, 60 after us */
	wref__retain_sync();
	ck_assert_int_eq(atomic_load(&oth_d), 0);
	ck_assert_uint_eq(wref_valmap_len(oth_map), 1);
	atomic_store(&fake_now, 1200);
	wref__retain_sync();
	ck_assert_int_eq(atomic_load(&oth_d), 1);
	wref_release(oth_map);
	wref__clock_set(NULL);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- teardown ---------------------------------------------------------- */

START_TEST(test_destroy_shared_objects)
{
	wref_valmap *m1 = wref_valmap_new(NULL);
	wref_valmap *m2 = wref_valmap_new(NULL);
	wref_set *s = wref_set_new(NULL);
	struct item *v[100];
	wref_ref *r[100];
	for (int i = 0; i < 100; i++) {
		v[i] = item_new(&item_type, (uint64_t)i, NULL);
		wref_valmap_set(m1, &i, sizeof i, v[i]);
		wref_valmap_set(m2, &i, sizeof i, v[i]);
		wref_set_add(s, v[i]);
		r[i] = wref_ref_new(v[i], NULL, NULL);
	}
	wref_release(m1);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(wref_valmap_len(m2), 100);
	ck_assert_uint_eq(wref_set_len(s), 100);
	for (int i = 0; i < 100; i++) {
		struct item *g = wref_ref_get(r[i]);
		ck_assert_ptr_eq(g, v[i]);
		wref_release(g);
		g = wref_valmap_get(m2, &i, sizeof i);
		ck_assert_ptr_eq(g, v[i]);
		wref_release(g);
		ck_assert_uint_eq(wref_strong_count(v[i]), 1);
	}
	for (int i = 0; i < 100; i++)
		wref_release(v[i]);
	ck_assert_uint_eq(wref_valmap_len(m2), 0);
	ck_assert_uint_eq(wref_set_len(s), 0);
	for (int i = 0; i < 100; i++)
		wref_release(r[i]);
	wref_release(m2);
	wref_release(s);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- fork (rules 12, 18) --------------------------------------------- */

/* the child uses a map made by the parent and grows it (the lfht resize
 * worker must work in the child) and tears it down */
START_TEST(test_fork)
{
	/* TSan cannot run a forked child of a threaded process that starts
	 * threads of its own ("dup thread with used id") */
	if (ct_tsan())
		return;
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *v[64];
	for (int i = 0; i < 64; i++) {
		v[i] = item_new(&item_type, (uint64_t)i, NULL);
		wref_valmap_set(m, &i, sizeof i, v[i]);
	}
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		alarm(60);
		int bad = 0;
		enum { N = 20000 };
		struct item **w = malloc(N * sizeof *w);
		for (int i = 64; i < 64 + N; i++) {
			w[i - 64] = wref_new(&item_type, sizeof(struct item));
			w[i - 64]->id = (uint64_t)i;
			bad |= wref_valmap_set(m, &i, sizeof i, w[i - 64]);
		}
		for (int i = 0; i < 64 + N; i += 97) {
			struct item *g = wref_valmap_get(m, &i, sizeof i);
			bad |= !g || g->id != (uint64_t)i;
			wref_release(g);
		}
		bad |= wref_valmap_len(m) != 64 + N;
		for (int i = 0; i < N; i++)
			wref_release(w[i]);
		free(w); /* memcheck follows the child: no leak of our own */
		bad |= wref_valmap_len(m) != 64;
		wref_release(m);
		bad |= wref_flush() != 0;
		_exit(bad ? 1 : 0);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	ck_assert_uint_eq(wref_valmap_len(m), 64);
	for (int i = 0; i < 64; i++)
		wref_release(v[i]);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- allocation failure ---------------------------------------------- */

START_TEST(test_enomem)
{
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *a = item_new(&item_type, 1, NULL);
	wref__alloc_fail_after(0);
	ck_assert_int_eq(wref_valmap_set(m, "a", 1, a), -ENOMEM);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref__alloc_fail_after(0);
	errno = 0;
	ck_assert_ptr_null(wref_valmap_new(NULL));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_int_eq(wref_valmap_set(m, "a", 1, a), 0);
	wref__alloc_fail_after(0);
	struct fe f = { .m = m };
	ck_assert_int_eq(wref_valmap_foreach(m, fe_count, &f), -ENOMEM);
	wref__alloc_fail_after(-1);
	wref_release(a);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* ---- the entry embedded in a new block (issue 18) -------------------- */

/*
 * A set or get_or_create that makes its object's block puts the entry in
 * the block's allocation (one allocation, its watch linked before the
 * block is published).  Its memory lives until the block's last hold goes:
 * replaced, deleted or fired, the entry must not be freed on its own, and
 * the block must not be freed under it.  Later entries of the same object
 * are separate.  blocks_live balancing (ct_assert_no_leak) and ASan catch
 * a lost or doubled free.
 */
START_TEST(test_embedded_entry)
{
	_Atomic int died = 0;
	wref_valmap *m = wref_valmap_new(NULL);
	struct item *a = item_new(&item_type, 1, &died);
	struct item *b = item_new(&item_type, 2, &died);
	/* one allocation: the second one from now would fail */
	wref__alloc_fail_after(1);
	int rc = wref_valmap_set(m, "one", 3, a);
	wref__alloc_fail_after(-1);
	ck_assert_int_eq(rc, 0);
	/* the map, a watch owner that a's death pins, is pinnable: its last
	 * release takes the atomic path (make torture found the embedded
	 * path without it: an over-release racing a death's pin) */
	ck_assert(atomic_load(&wref__hdr(m)->tc) & WREF_TC_PIN);
	ck_assert_ptr_nonnull(wref__cb_peek(wref__hdr(a)));
	ck_assert(wref__cb_embeds(wref__cb_peek(wref__hdr(a)),
				  wref__cb_peek(wref__hdr(a))->watches));
	/* a second key for the same object: a separate entry */
	ck_assert_int_eq(wref_valmap_set(m, "two", 3, a), 0);
	struct item *g = wref_valmap_get(m, "one", 3);
	ck_assert_ptr_eq(g, a);
	wref_release(g);
	/* the embedded entry replaced while its object lives: retired, its
	 * memory kept by the block */
	ck_assert_int_eq(wref_valmap_set(m, "one", 3, b), 0);
	ck_assert_int_eq(wref_flush(), 0);
	g = wref_valmap_get(m, "one", 3);
	ck_assert_ptr_eq(g, b);
	wref_release(g);
	g = wref_valmap_get(m, "two", 3);
	ck_assert_ptr_eq(g, a);
	wref_release(g);
	/* a's death removes "two" at once; its block goes with the last
	 * hold, the embedded entry's memory with it */
	wref_release(a);
	ck_assert_int_eq(atomic_load(&died), 1);
	ck_assert_ptr_null(wref_valmap_get(m, "two", 3));
	ck_assert_uint_eq(wref_valmap_len(m), 1);
	/* b's embedded entry fires at b's death (prompt removal) */
	wref_release(b);
	ck_assert_int_eq(atomic_load(&died), 2);
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	/* deleted, then the object dies; and one whose map goes first */
	struct item *c = item_new(&item_type, 3, &died);
	struct item *d = item_new(&item_type, 4, &died);
	ck_assert_int_eq(wref_valmap_set(m, "c", 1, c), 0);
	ck_assert_int_eq(wref_valmap_set(m, "d", 1, d), 0);
	ck_assert_int_eq(wref_valmap_del(m, "c", 1), 0);
	wref_release(c);
	wref_release(m);
	ck_assert_int_eq(wref_flush(), 0);
	wref_release(d);
	ck_assert_int_eq(atomic_load(&died), 4);
	ct_assert_no_leak(start);
}
END_TEST

/* get_or_create racing on one key, each maker's object new: the losers'
 * embedded entries are discarded (unlinked, their block held no more) */
static void *goc_fresh(const void *key, size_t len, void *arg)
{
	(void)key;
	(void)len;
	(void)arg;
	return wref_new(&item_type, sizeof(struct item));
}

struct goc_race {
	wref_valmap *m;
	pthread_barrier_t *bar;
	void *got[64];
};

static void *goc_racer(void *p)
{
	struct goc_race *r = p;
	for (int i = 0; i < 64; i++) {
		char key[8];
		int n = snprintf(key, sizeof key, "k%d", i);
		pthread_barrier_wait(r->bar);
		r->got[i] = wref_valmap_get_or_create(r->m, key, (size_t)n,
						      goc_fresh, NULL);
	}
	return NULL;
}

START_TEST(test_embedded_entry_goc_race)
{
	wref_valmap *m = wref_valmap_new(NULL);
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, 2);
	struct goc_race r[2] = { { .m = m, .bar = &bar },
				 { .m = m, .bar = &bar } };
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, goc_racer, &r[1]), 0);
	goc_racer(&r[0]);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	pthread_barrier_destroy(&bar);
	for (int i = 0; i < 64; i++) {
		ck_assert_ptr_nonnull(r[0].got[i]);
		ck_assert_ptr_eq(r[0].got[i], r[1].got[i]);
	}
	ck_assert_uint_eq(wref_valmap_len(m), 64);
	for (int i = 0; i < 64; i++) {
		wref_release(r[0].got[i]);
		wref_release(r[1].got[i]);
	}
	ck_assert_uint_eq(wref_valmap_len(m), 0);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

static Suite *valmap_suite(void)
{
	Suite *s = suite_create("valmap");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_new_errors);
	tcase_add_test(tc, test_arg_errors);
	tcase_add_test(tc, test_set_get_del);
	tcase_add_test(tc, test_embedded_entry);
	tcase_add_test(tc, test_embedded_entry_goc_race);
	tcase_add_test(tc, test_prompt_removal);
	tcase_add_test(tc, test_many_watches_one_object);
	tcase_add_test(tc, test_resize_both_ways);
	tcase_add_test(tc, test_replace_then_old_dies);
	tcase_add_test(tc, test_key_lengths);
	tcase_add_test(tc, test_key_length_layouts);
	tcase_add_test(tc, test_len_split);
	tcase_add_test(tc, test_clear);
	tcase_add_test(tc, test_foreach);
	tcase_add_test(tc, test_foreach_releases_map);
	tcase_add_test(tc, test_foreach_releases_last_ref);
	tcase_add_loop_test(tc, test_get_or_create, 0, 2);
	tcase_add_test(tc, test_create_once);
	tcase_add_test(tc, test_create_once_cleared);
	tcase_add_test(tc, test_create_once_recursive);
	tcase_add_test(tc, test_destroy_shared_objects);
	tcase_add_test(tc, test_fork);
	tcase_add_test(tc, test_enomem);
	suite_add_tcase(s, tc);
	tc = tcase_create("retention");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_retain_expiry);
	tcase_add_test(tc, test_retain_max_lru);
	tcase_add_test(tc, test_retain_del_drops);
	tcase_add_test(tc, test_retain_timer);
	tcase_add_test(tc, test_retain_release_map_on_executor);
	tcase_add_test(tc, test_retain_inline_mode);
	tcase_add_test(tc, test_create_once_other_touches);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ct_run_suite(valmap_suite());
}
