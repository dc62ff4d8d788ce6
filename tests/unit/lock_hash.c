/*
 * unit/lock_hash.c - unit tests of two leaf modules on their own (issue 14
 * item 5): the futex mutex of lib/lock.c (mutual exclusion under threads,
 * the waiter path through the futex, the uncontended states) and the
 * hashes (wref__hash_ptr of lib/ref.c spreads aligned pointers;
 * wref__hash_bytes of lib/table.c: length, content and alignment, spread).
 * Run by make check and under TSan (which also sees any data race a
 * broken lock would let through).
 */
#include "core_test.h"
#include "table.h"

#include <sched.h>

/* ---- lock ---------------------------------------------------------------- */

enum { MX_THREADS = 4 };

struct mx {
	wref__lock_t lock;
	long counter;       /* plain: only ever touched under the lock */
	int inside;         /* plain: 1 while someone is in the section */
	long iters;
	_Atomic bool violated;
};

static void *mx_worker(void *p)
{
	struct mx *m = p;
	for (long i = 0; i < m->iters; i++) {
		wref__lock(&m->lock);
		if (m->inside)
			atomic_store(&m->violated, true);
		m->inside = 1;
		long c = m->counter;
		if ((i & 63) == 0)
			sched_yield(); /* hold it long enough to be contended */
		m->counter = c + 1;
		m->inside = 0;
		wref__unlock(&m->lock);
	}
	return NULL;
}

START_TEST(lock_mutual_exclusion)
{
	static struct mx m;
	pthread_t th[MX_THREADS];
	m.iters = 20000 * ct_scale() / (ct_tsan() ? 10 : 1);
	for (int i = 0; i < MX_THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, mx_worker, &m), 0);
	for (int i = 0; i < MX_THREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert(!atomic_load(&m.violated));
	ck_assert_int_eq(m.counter, (long)MX_THREADS * m.iters);
	ck_assert_uint_eq(atomic_load(&m.lock.v), 0);
}
END_TEST

START_TEST(lock_uncontended_states)
{
	wref__lock_t l = { 0 };
	wref__lock(&l);
	ck_assert_uint_eq(atomic_load(&l.v), 1); /* locked, no waiters */
	wref__unlock(&l);
	ck_assert_uint_eq(atomic_load(&l.v), 0);
	/* a futex wait on a changed value returns at once */
	_Atomic uint32_t word = 5;
	ck_assert_int_eq(wref__futex_wait(&word, 4), -1);
	wref__futex_wake(&word, 1); /* nobody waits: harmless */
}
END_TEST

struct waiter {
	wref__lock_t *lock;
	int *guarded; /* plain: written by the holder before its unlock */
	int seen;
	_Atomic bool acquired;
};

static void *waiter_main(void *p)
{
	struct waiter *w = p;
	wref__lock(w->lock); /* spins, then sleeps on the futex (v = 2) */
	w->seen = *w->guarded;
	atomic_store(&w->acquired, true);
	wref__unlock(w->lock);
	return NULL;
}

/* The waiter path: a thread that finds the lock held past its spin marks
 * it contended (2) and sleeps; the holder's unlock sees 2, wakes it, and
 * the waiter sees what the holder wrote before unlocking. */
START_TEST(lock_waiter_path)
{
	wref__lock_t l = { 0 };
	int guarded = 0;
	struct waiter w = { .lock = &l, .guarded = &guarded };
	pthread_t th;

	wref__lock(&l);
	ck_assert_int_eq(pthread_create(&th, NULL, waiter_main, &w), 0);
	/* wait (up to 30 s) for the waiter to mark the lock contended */
	double t0 = ct_now();
	while (atomic_load(&l.v) != 2 && ct_now() - t0 < 30)
		usleep(1000);
	ck_assert_uint_eq(atomic_load(&l.v), 2);
	usleep(10000); /* let it reach the futex sleep, not only the xchg */
	ck_assert(!atomic_load(&w.acquired));
	guarded = 42;
	wref__unlock(&l); /* v was 2: the slow path wakes the waiter */
	pthread_join(th, NULL);
	ck_assert(atomic_load(&w.acquired));
	ck_assert_int_eq(w.seen, 42);
	ck_assert_uint_eq(atomic_load(&l.v), 0);
}
END_TEST

/* Several sleepers: each unlock that finds 2 wakes one; a woken waiter
 * takes the lock as 2 (there may be others), so none is left asleep. */
START_TEST(lock_many_waiters)
{
	enum { N = 6 };
	wref__lock_t l = { 0 };
	int guarded = 0;
	struct waiter w[N];
	pthread_t th[N];

	wref__lock(&l);
	for (int i = 0; i < N; i++) {
		w[i] = (struct waiter){ .lock = &l, .guarded = &guarded };
		ck_assert_int_eq(pthread_create(&th[i], NULL, waiter_main,
						&w[i]), 0);
	}
	double t0 = ct_now();
	while (atomic_load(&l.v) != 2 && ct_now() - t0 < 30)
		usleep(1000);
	usleep(20000);
	guarded = 7;
	wref__unlock(&l);
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		ck_assert(atomic_load(&w[i].acquired));
		ck_assert_int_eq(w[i].seen, 7);
	}
	ck_assert_uint_eq(atomic_load(&l.v), 0);
}
END_TEST

/* ---- hashing ---------------------------------------------------------------- */

enum { NKEYS = 1 << 14, NBUCKETS = 1 << 10 };

/* the fullest of NBUCKETS buckets, by the low bits and by the high bits
 * (cds_lfht uses the reversed hash's high bits as the bucket index) */
static unsigned max_load(const uint64_t *h, size_t n, bool high)
{
	static unsigned count[NBUCKETS];
	unsigned max = 0;
	memset(count, 0, sizeof count);
	for (size_t i = 0; i < n; i++) {
		unsigned b = high ? (unsigned)(h[i] >> 54)
				  : (unsigned)(h[i] & (NBUCKETS - 1));
		if (++count[b] > max)
			max = count[b];
	}
	return max;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static size_t distinct(uint64_t *h, size_t n)
{
	qsort(h, n, sizeof *h, cmp_u64);
	size_t d = n ? 1 : 0;
	for (size_t i = 1; i < n; i++)
		d += h[i] != h[i - 1];
	return d;
}

/* 16 keys a bucket on average; a hash that kept the alignment zeros in
 * its low bits, or the address's sameness in its high bits, would put
 * hundreds in one */
#define MAX_LOAD 48

START_TEST(hash_ptr_spreads_aligned)
{
	static uint64_t h[NKEYS];
	static const size_t aligns[] = { 8, 16, 64, 4096 };
	for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
		uintptr_t base = (uintptr_t)0x7f1234560000;
		for (size_t i = 0; i < NKEYS; i++)
			h[i] = wref__hash_ptr((void *)(base + i * aligns[a]));
		ck_assert_msg(max_load(h, NKEYS, false) <= MAX_LOAD,
			      "align %zu: low bits load %u", aligns[a],
			      max_load(h, NKEYS, false));
		ck_assert_msg(max_load(h, NKEYS, true) <= MAX_LOAD,
			      "align %zu: high bits load %u", aligns[a],
			      max_load(h, NKEYS, true));
		ck_assert_uint_eq(distinct(h, NKEYS), NKEYS);
	}
	/* deterministic */
	ck_assert_uint_eq(wref__hash_ptr(&h[1]), wref__hash_ptr(&h[1]));
}
END_TEST

/* every single-bit change of a pointer changes about half the hash bits */
START_TEST(hash_ptr_avalanche)
{
	uint64_t x = 0x7f0012345670;
	uint64_t h0 = wref__hash_ptr((void *)(uintptr_t)x);
	for (int b = 3; b < 48; b++) {
		uint64_t h1 = wref__hash_ptr((void *)(uintptr_t)(x ^ (1ull << b)));
		int flipped = __builtin_popcountll(h0 ^ h1);
		ck_assert_msg(flipped >= 12 && flipped <= 52,
			      "bit %d flips %d hash bits", b, flipped);
	}
}
END_TEST

START_TEST(hash_bytes_content_and_length)
{
	/* NULL with length 0 (a valid empty key) reads nothing */
	ck_assert_uint_eq(wref__hash_bytes(NULL, 0), wref__hash_bytes("x", 0));
	/* the length counts: zero bytes are not padding */
	static const unsigned char zeros[64];
	static uint64_t h[NKEYS];
	for (size_t n = 0; n <= 64; n++)
		h[n] = wref__hash_bytes(zeros, n);
	ck_assert_uint_eq(distinct(h, 65), 65);
	ck_assert_uint_ne(wref__hash_bytes("abc", 3),
			  wref__hash_bytes("abcd", 4));
	ck_assert_uint_ne(wref__hash_bytes("ab", 2), wref__hash_bytes("ba", 2));
	/* every single-bit change of a key, for every length up to 40 (the
	 * tail paths: 1-3, 4-7, whole words, overlapping last word) */
	unsigned char key[40];
	for (size_t n = 1; n <= sizeof key; n++) {
		for (size_t i = 0; i < n; i++)
			key[i] = (unsigned char)(i * 37 + n);
		size_t k = 0;
		h[k++] = wref__hash_bytes(key, n);
		for (size_t bit = 0; bit < n * 8; bit++) {
			key[bit / 8] ^= (unsigned char)(1u << bit % 8);
			h[k++] = wref__hash_bytes(key, n);
			key[bit / 8] ^= (unsigned char)(1u << bit % 8);
		}
		ck_assert_msg(distinct(h, k) == k, "length %zu: collision", n);
	}
}
END_TEST

START_TEST(hash_bytes_alignment_independent)
{
	static const char text[] = "the quick brown fox jumps over the lazy dog";
	unsigned char buf[sizeof text + 16];
	for (size_t n = 0; n < sizeof text; n++) {
		uint64_t want = wref__hash_bytes(text, n);
		for (size_t off = 0; off < 16; off++) {
			memset(buf, 0xa5, sizeof buf);
			memcpy(buf + off, text, n);
			ck_assert_uint_eq(wref__hash_bytes(buf + off, n), want);
		}
	}
}
END_TEST

START_TEST(hash_bytes_spreads)
{
	static uint64_t h[NKEYS];
	char key[32];
	for (size_t i = 0; i < NKEYS; i++) {
		int n = snprintf(key, sizeof key, "key:%zu", i);
		h[i] = wref__hash_bytes(key, (size_t)n);
	}
	ck_assert_uint_le(max_load(h, NKEYS, false), MAX_LOAD);
	ck_assert_uint_le(max_load(h, NKEYS, true), MAX_LOAD);
	/* counters as raw 8-byte keys: one whole word each */
	for (size_t i = 0; i < NKEYS; i++) {
		uint64_t v = i;
		h[i] = wref__hash_bytes(&v, sizeof v);
	}
	ck_assert_uint_le(max_load(h, NKEYS, false), MAX_LOAD);
	ck_assert_uint_le(max_load(h, NKEYS, true), MAX_LOAD);
	ck_assert_uint_eq(distinct(h, NKEYS), NKEYS);
}
END_TEST

static Suite *lock_hash_suite(void)
{
	Suite *s = suite_create("unit: lock, hash");
	TCase *tc = tcase_create("lock");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, lock_uncontended_states);
	tcase_add_test(tc, lock_mutual_exclusion);
	tcase_add_test(tc, lock_waiter_path);
	tcase_add_test(tc, lock_many_waiters);
	suite_add_tcase(s, tc);
	tc = tcase_create("hash");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, hash_ptr_spreads_aligned);
	tcase_add_test(tc, hash_ptr_avalanche);
	tcase_add_test(tc, hash_bytes_content_and_length);
	tcase_add_test(tc, hash_bytes_alignment_independent);
	tcase_add_test(tc, hash_bytes_spreads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(lock_hash_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
