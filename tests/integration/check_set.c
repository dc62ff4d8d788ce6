/*
 * check_set.c - the weak set: every call and error, identity and by-value
 * membership, prompt removal at death, foreach, teardown.
 */
#include "containers_test.h"

static struct wref_stats start;

static void setup(void)
{
	start = ct_stats();
}

START_TEST(test_errors)
{
	wref_map_options bad = { .flags = 0x40 };
	errno = 0;
	ck_assert_ptr_null(wref_set_new(&bad));
	ck_assert_int_eq(errno, EINVAL);
	wref_set *s = wref_set_new(NULL);
	struct item *a = item_new(&item_type, 1, NULL);
	struct item *nw = item_new(&noweak_type, 2, NULL);
	ck_assert_int_eq(wref_set_add(NULL, a), -EINVAL);
	ck_assert_int_eq(wref_set_add(s, NULL), -EINVAL);
	ck_assert_int_eq(wref_set_add(s, nw), -EINVAL);
	ck_assert_int_eq(wref_set_discard(NULL, a), -EINVAL);
	ck_assert_int_eq(wref_set_discard(s, NULL), -EINVAL);
	ck_assert_int_eq(wref_set_discard(s, a), -ENOENT);
	ck_assert(!wref_set_contains(NULL, a));
	ck_assert(!wref_set_contains(s, NULL));
	ck_assert(!wref_set_contains(s, nw));
	ck_assert_int_eq(wref_set_foreach(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(wref_set_foreach(s, NULL, NULL), -EINVAL);
	ck_assert_uint_eq(wref_set_len(NULL), 0);
	wref_map_options bv = { .flags = WREF_MAP_BY_VALUE };
	wref_set *sv = wref_set_new(&bv);
	ck_assert_int_eq(wref_set_add(sv, a), -EINVAL); /* no hash/equal */
	ck_assert_int_eq(wref_set_discard(sv, a), -EINVAL);
	wref_release(sv);
	wref_release(a);
	wref_release(nw);
	wref_release(s);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_add_discard)
{
	_Atomic int d = 0;
	wref_set *s = wref_set_new(NULL);
	struct item *a = item_new(&item_type, 1, &d);
	struct item *b = item_new(&item_type, 1, &d); /* equal id, other obj */
	ck_assert_int_eq(wref_set_add(s, a), 0);
	ck_assert_int_eq(wref_set_add(s, a), -EEXIST);
	ck_assert_int_eq(wref_set_add(s, b), 0); /* identity */
	ck_assert_uint_eq(wref_set_len(s), 2);
	ck_assert_uint_eq(wref_strong_count(a), 1);
	ck_assert(wref_set_contains(s, a));
	ck_assert_int_eq(wref_set_discard(s, a), 0);
	ck_assert_int_eq(wref_set_discard(s, a), -ENOENT);
	ck_assert(!wref_set_contains(s, a));
	ck_assert(wref_set_contains(s, b));
	ck_assert_int_eq(wref_set_add(s, a), 0);
	wref_release(a); /* removed at once */
	ck_assert_uint_eq(wref_set_len(s), 1);
	wref_release(b);
	ck_assert_uint_eq(wref_set_len(s), 0);
	ck_assert_int_eq(atomic_load(&d), 2);
	wref_release(s);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_by_value)
{
	wref_map_options bv = { .flags = WREF_MAP_BY_VALUE };
	wref_set *s = wref_set_new(&bv);
	struct item *a = item_new(&vitem_type, 5, NULL);
	struct item *b = item_new(&vitem_type, 5, NULL);
	struct item *c = item_new(&vitem_type, 6, NULL);
	ck_assert_int_eq(wref_set_add(s, a), 0);
	ck_assert_int_eq(wref_set_add(s, b), -EEXIST);
	ck_assert(wref_set_contains(s, b));
	ck_assert(!wref_set_contains(s, c));
	ck_assert_int_eq(wref_set_add(s, c), 0);
	ck_assert_uint_eq(wref_set_len(s), 2);
	/* after a dies, an equal object can join */
	wref_release(a);
	ck_assert(!wref_set_contains(s, b));
	ck_assert_int_eq(wref_set_add(s, b), 0);
	ck_assert_int_eq(wref_set_discard(s, b), 0);
	ck_assert_uint_eq(wref_set_len(s), 1);
	wref_release(b);
	wref_release(c);
	ck_assert_uint_eq(wref_set_len(s), 0);
	wref_release(s);
	ct_assert_no_leak(start);
}
END_TEST

struct fe {
	wref_set *s;
	int seen;
	uint64_t sum;
	int stop_at;
};

static int fe_fn(void *obj, void *arg)
{
	struct fe *f = arg;
	ck_assert_uint_ge(wref_strong_count(obj), 2);
	f->sum += ((struct item *)obj)->id;
	f->seen++;
	if (f->s)
		ck_assert_int_eq(wref_set_discard(f->s, obj), 0);
	return f->stop_at && f->seen == f->stop_at ? -7 : 0;
}

START_TEST(test_foreach)
{
	wref_set *s = wref_set_new(NULL);
	struct item *v[64];
	uint64_t sum = 0;
	for (int i = 0; i < 64; i++) {
		v[i] = item_new(&item_type, (uint64_t)i, NULL);
		sum += (uint64_t)i;
		ck_assert_int_eq(wref_set_add(s, v[i]), 0);
	}
	struct fe f = { 0 };
	ck_assert_int_eq(wref_set_foreach(s, fe_fn, &f), 0);
	ck_assert_int_eq(f.seen, 64);
	ck_assert_uint_eq(f.sum, sum);
	f = (struct fe){ .stop_at = 3 };
	ck_assert_int_eq(wref_set_foreach(s, fe_fn, &f), -7);
	ck_assert_int_eq(f.seen, 3);
	f = (struct fe){ .s = s };
	ck_assert_int_eq(wref_set_foreach(s, fe_fn, &f), 0);
	ck_assert_int_eq(f.seen, 64);
	ck_assert_uint_eq(wref_set_len(s), 0);
	for (int i = 0; i < 64; i++)
		wref_release(v[i]);
	wref_release(s);
	ct_assert_no_leak(start);
}
END_TEST

/* issue 16 item 1: fn releases the set's only ref (ASan heap-use-after-free
 * in the old walk's final unpin, every run) */
static int fe_release_set(void *obj, void *arg)
{
	(void)obj;
	wref_set **sp = arg;
	if (*sp) {
		wref_release(*sp);
		*sp = NULL;
	}
	return 0;
}

START_TEST(test_foreach_releases_last_ref)
{
	wref_set *s = wref_set_new(NULL);
	struct item *v[8];
	for (int i = 0; i < 8; i++) {
		v[i] = item_new(&item_type, (uint64_t)i, NULL);
		ck_assert_int_eq(wref_set_add(s, v[i]), 0);
	}
	wref_set *arg = s;
	ck_assert_int_eq(wref_set_foreach(s, fe_release_set, &arg), 0);
	ck_assert_ptr_null(arg);
	for (int i = 0; i < 8; i++) {
		ck_assert_uint_eq(wref_strong_count(v[i]), 1);
		wref_release(v[i]);
	}
	ct_assert_no_leak(start);
}
END_TEST

/* issue 16 item 2: a walk pins only the member fn is visiting.  While fn
 * is paused on one member, the other member's last release kills it at
 * once (gone from len/contains), and an equal new member can be added and
 * survives the walk.  The old walk pinned every member up front: B stayed
 * alive, the add returned -EEXIST and the new member was lost. */
static struct {
	wref_set *s;
	_Atomic(void *) paused_on;
	_Atomic int go;
	int seen;
} pw;

static int fe_pause(void *obj, void *arg)
{
	(void)arg;
	if (pw.seen++ == 0) {
		atomic_store(&pw.paused_on, obj);
		while (!atomic_load(&pw.go))
			usleep(100);
	}
	return 0;
}

static void *pause_walker(void *arg)
{
	(void)arg;
	ck_assert_int_eq(wref_set_foreach(pw.s, fe_pause, NULL), 0);
	return NULL;
}

START_TEST(test_foreach_pins_only_current)
{
	_Atomic int d[2] = { 0, 0 };
	wref_map_options o = { .flags = WREF_MAP_BY_VALUE };
	pw.s = wref_set_new(&o);
	atomic_store(&pw.paused_on, NULL);
	atomic_store(&pw.go, 0);
	pw.seen = 0;
	struct item *v[2];
	for (int i = 0; i < 2; i++) {
		v[i] = item_new(&vitem_type, (uint64_t)i, &d[i]);
		ck_assert_int_eq(wref_set_add(pw.s, v[i]), 0);
	}
	pthread_t th;
	pthread_create(&th, NULL, pause_walker, NULL);
	while (!atomic_load(&pw.paused_on))
		usleep(100);
	int a = atomic_load(&pw.paused_on) == v[0] ? 0 : 1, b = 1 - a;
	uint64_t bid = v[b]->id;
	wref_release(v[b]); /* B's last strong ref */
	ck_assert_int_eq(atomic_load(&d[b]), 1);
	ck_assert_uint_eq(wref_set_len(pw.s), 1);
	struct item *nb = item_new(&vitem_type, bid, NULL);
	ck_assert(!wref_set_contains(pw.s, nb));
	ck_assert_int_eq(wref_set_add(pw.s, nb), 0);
	atomic_store(&pw.go, 1);
	pthread_join(th, NULL);
	ck_assert(wref_set_contains(pw.s, nb)); /* not lost by the walk */
	ck_assert_uint_eq(wref_set_len(pw.s), 2);
	wref_release(nb);
	wref_release(v[a]);
	wref_release(pw.s);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_destroy_while_shared)
{
	wref_set *s1 = wref_set_new(NULL), *s2 = wref_set_new(NULL);
	wref_keymap *km = wref_keymap_new(NULL);
	struct item *v[50];
	for (int i = 0; i < 50; i++) {
		v[i] = item_new(&item_type, (uint64_t)i, NULL);
		wref_set_add(s1, v[i]);
		wref_set_add(s2, v[i]);
		wref_keymap_set(km, v[i], v[i]); /* key and value: a cycle
						     through the map */
	}
	wref_release(s1);
	ck_assert_int_eq(wref_flush(), 0);
	for (int i = 0; i < 50; i++)
		ck_assert(wref_set_contains(s2, v[i]));
	/* the keymap holds each value strongly (here its own key): release
	 * the map to break it */
	wref_release(km);
	ck_assert_int_eq(wref_flush(), 0);
	for (int i = 0; i < 50; i++)
		ck_assert_uint_eq(wref_strong_count(v[i]), 1);
	for (int i = 0; i < 50; i++)
		wref_release(v[i]);
	ck_assert_uint_eq(wref_set_len(s2), 0);
	wref_release(s2);
	ct_assert_no_leak(start);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("set");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_add_discard);
	tcase_add_test(tc, test_by_value);
	tcase_add_test(tc, test_foreach);
	tcase_add_test(tc, test_destroy_while_shared);
	tcase_add_test(tc, test_foreach_releases_last_ref);
	tcase_add_test(tc, test_foreach_pins_only_current);
	suite_add_tcase(s, tc);
	return ct_run_suite(s);
}
