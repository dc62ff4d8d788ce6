/*
 * check_keymap.c - the weak-key map: every call and error, identity and
 * by-value keys, prompt removal at key death with the value released on
 * the executor (wref_flush waits for it), foreach, teardown.
 */
#include "containers_test.h"

static struct wref_stats start;

static void setup(void)
{
	start = ct_stats();
}

START_TEST(test_errors)
{
	wref_map_options bad = { .flags = 0x80 };
	errno = 0;
	ck_assert_ptr_null(wref_keymap_new(&bad));
	ck_assert_int_eq(errno, EINVAL);
	wref_keymap *m = wref_keymap_new(NULL);
	struct item *k = item_new(&item_type, 1, NULL);
	struct item *v = item_new(&item_type, 2, NULL);
	struct item *nw = item_new(&noweak_type, 3, NULL);
	ck_assert_int_eq(wref_keymap_set(NULL, k, v), -EINVAL);
	ck_assert_int_eq(wref_keymap_set(m, NULL, v), -EINVAL);
	ck_assert_int_eq(wref_keymap_set(m, k, NULL), -EINVAL);
	ck_assert_int_eq(wref_keymap_set(m, nw, v), -EINVAL);
	/* a NO_WEAK value is fine: it is held strongly */
	ck_assert_int_eq(wref_keymap_set(m, k, nw), 0);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_get(NULL, k));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_get(m, NULL));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_pop(m, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(wref_keymap_del(NULL, k), -EINVAL);
	ck_assert_int_eq(wref_keymap_del(m, v), -ENOENT); /* never weak */
	ck_assert_int_eq(wref_keymap_foreach(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(wref_keymap_foreach(m, NULL, NULL), -EINVAL);
	ck_assert_uint_eq(wref_keymap_len(NULL), 0);
	/* by value with a key type lacking hash/equal: EINVAL */
	wref_map_options bv = { .flags = WREF_MAP_BY_VALUE };
	wref_keymap *mv = wref_keymap_new(&bv);
	ck_assert_int_eq(wref_keymap_set(mv, k, v), -EINVAL);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_get(mv, k));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(wref_keymap_len(mv), 0);
	wref_release(mv);
	wref_release(k);
	wref_release(v);
	wref_release(nw);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_set_get_pop_del)
{
	_Atomic int dv = 0;
	wref_keymap *m = wref_keymap_new(NULL);
	struct item *k1 = item_new(&item_type, 1, NULL);
	struct item *k2 = item_new(&item_type, 2, NULL);
	struct item *v1 = item_new(&item_type, 10, &dv);
	struct item *v2 = item_new(&item_type, 20, &dv);
	ck_assert_int_eq(wref_keymap_set(m, k1, v1), 0);
	ck_assert_int_eq(wref_keymap_set(m, k2, v2), 0);
	ck_assert_uint_eq(wref_strong_count(v1), 2); /* held strongly */
	ck_assert_uint_eq(wref_strong_count(k1), 1); /* key weakly */
	ck_assert_uint_eq(wref_keymap_len(m), 2);
	struct item *g = wref_keymap_get(m, k1);
	ck_assert_ptr_eq(g, v1);
	wref_release(g);
	/* replace k1's value: the old value is released (executor) */
	ck_assert_int_eq(wref_keymap_set(m, k1, v2), 0);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(wref_strong_count(v1), 1);
	ck_assert_uint_eq(wref_keymap_len(m), 2);
	g = wref_keymap_pop(m, k1);
	ck_assert_ptr_eq(g, v2);
	wref_release(g);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_pop(m, k1));
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_ptr_null(wref_keymap_get(m, k1));
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(wref_keymap_del(m, k2), 0);
	ck_assert_int_eq(wref_keymap_del(m, k2), -ENOENT);
	ck_assert_uint_eq(wref_keymap_len(m), 0);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(wref_strong_count(v2), 1);
	wref_release(v1);
	wref_release(v2);
	ck_assert_int_eq(atomic_load(&dv), 2);
	wref_release(k1);
	wref_release(k2);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_key_death)
{
	_Atomic int dv = 0;
	wref_keymap *m = wref_keymap_new(NULL);
	struct item *k = item_new(&item_type, 1, NULL);
	struct item *v = item_new(&item_type, 10, &dv);
	ck_assert_int_eq(wref_keymap_set(m, k, v), 0);
	wref_release(v); /* the map's ref is the last */
	ck_assert_int_eq(atomic_load(&dv), 0);
	wref_release(k);
	/* removed at once; the value's release is queued (rule 14) */
	ck_assert_uint_eq(wref_keymap_len(m), 0);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&dv), 1);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_by_value)
{
	wref_map_options bv = { .flags = WREF_MAP_BY_VALUE };
	wref_keymap *m = wref_keymap_new(&bv);
	struct item *a = item_new(&vitem_type, 7, NULL);
	struct item *b = item_new(&vitem_type, 7, NULL); /* equal to a */
	struct item *c = item_new(&vitem_type, 8, NULL);
	struct item *v = item_new(&item_type, 100, NULL);
	struct item *w = item_new(&item_type, 200, NULL);
	ck_assert_int_eq(wref_keymap_set(m, a, v), 0);
	struct item *g = wref_keymap_get(m, b); /* b never weakly used */
	ck_assert_ptr_eq(g, v);
	wref_release(g);
	ck_assert_ptr_null(wref_keymap_get(m, c));
	ck_assert_int_eq(wref_keymap_set(m, b, w), 0); /* replaces a's */
	ck_assert_uint_eq(wref_keymap_len(m), 1);
	g = wref_keymap_get(m, a);
	ck_assert_ptr_eq(g, w);
	wref_release(g);
	/* a dies: the entry is b's now and survives */
	wref_release(a);
	ck_assert_uint_eq(wref_keymap_len(m), 1);
	g = wref_keymap_get(m, b);
	ck_assert_ptr_eq(g, w);
	wref_release(g);
	wref_release(b);
	ck_assert_uint_eq(wref_keymap_len(m), 0);
	wref_release(c);
	wref_release(v);
	wref_release(w);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

struct fe {
	wref_keymap *m;
	int seen;
};

static int fe_fn(void *key, void *value, void *arg)
{
	struct fe *f = arg;
	struct item *k = key, *v = value;
	ck_assert_uint_eq(v->id, k->id + 1000);
	ck_assert_uint_ge(wref_strong_count(key), 2);
	/* may modify the map: delete what we see */
	ck_assert_int_eq(wref_keymap_del(f->m, key), 0);
	f->seen++;
	return f->seen == 1000 ? 5 : 0;
}

START_TEST(test_foreach)
{
	wref_keymap *m = wref_keymap_new(NULL);
	struct item *k[40];
	for (int i = 0; i < 40; i++) {
		k[i] = item_new(&item_type, (uint64_t)i, NULL);
		struct item *v = item_new(&item_type, (uint64_t)i + 1000,
					  NULL);
		ck_assert_int_eq(wref_keymap_set(m, k[i], v), 0);
		wref_release(v);
	}
	wref_release(k[0]);
	k[0] = NULL;
	struct fe f = { m, 0 };
	ck_assert_int_eq(wref_keymap_foreach(m, fe_fn, &f), 0);
	ck_assert_int_eq(f.seen, 39);
	ck_assert_uint_eq(wref_keymap_len(m), 0);
	for (int i = 0; i < 40; i++)
		wref_release(k[i]);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

/* issue 16 item 1: fn releases the map's only ref (ASan heap-use-after-free
 * in the old walk's final unpin, every run) */
static int fe_release_km(void *key, void *value, void *arg)
{
	(void)key;
	(void)value;
	wref_keymap **mp = arg;
	if (*mp) {
		wref_release(*mp);
		*mp = NULL;
	}
	return 0;
}

START_TEST(test_foreach_releases_last_ref)
{
	_Atomic int dv = 0;
	wref_keymap *m = wref_keymap_new(NULL);
	struct item *k[8];
	for (int i = 0; i < 8; i++) {
		k[i] = item_new(&item_type, (uint64_t)i, NULL);
		struct item *v = item_new(&item_type, (uint64_t)i + 100, &dv);
		ck_assert_int_eq(wref_keymap_set(m, k[i], v), 0);
		wref_release(v);
	}
	wref_keymap *arg = m;
	ck_assert_int_eq(wref_keymap_foreach(m, fe_release_km, &arg), 0);
	ck_assert_ptr_null(arg);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&dv), 8);
	for (int i = 0; i < 8; i++) {
		ck_assert_uint_eq(wref_strong_count(k[i]), 1);
		wref_release(k[i]);
	}
	ct_assert_no_leak(start);
}
END_TEST

/* releasing the map releases its values (via the executor) but not its
 * keys; other containers keep working */
START_TEST(test_destroy)
{
	_Atomic int dv = 0;
	wref_keymap *m = wref_keymap_new(NULL);
	wref_keymap *m2 = wref_keymap_new(NULL);
	struct item *k[30];
	for (int i = 0; i < 30; i++) {
		k[i] = item_new(&item_type, (uint64_t)i, NULL);
		struct item *v = item_new(&item_type, 0, &dv);
		wref_keymap_set(m, k[i], v);
		wref_keymap_set(m2, k[i], v);
		wref_release(v);
	}
	wref_release(m);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&dv), 0); /* m2 still holds them */
	ck_assert_uint_eq(wref_keymap_len(m2), 30);
	wref_release(m2);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(atomic_load(&dv), 30);
	for (int i = 0; i < 30; i++)
		ck_assert_uint_eq(wref_strong_count(k[i]), 1);
	for (int i = 0; i < 30; i++)
		wref_release(k[i]);
	ct_assert_no_leak(start);
}
END_TEST

/* inline executor mode: the value's release runs before the key's
 * release returns */
START_TEST(test_inline_mode)
{
	wref_config cfg = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&cfg), 0);
	_Atomic int dv = 0;
	wref_keymap *m = wref_keymap_new(NULL);
	struct item *k = item_new(&item_type, 1, NULL);
	struct item *v = item_new(&item_type, 2, &dv);
	wref_keymap_set(m, k, v);
	wref_release(v);
	wref_release(k);
	/* inline: the value's release ran before wref_release returned */
	ck_assert_int_eq(atomic_load(&dv), 1);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

START_TEST(test_enomem)
{
	wref_keymap *m = wref_keymap_new(NULL);
	struct item *k = item_new(&item_type, 1, NULL);
	struct item *v = item_new(&item_type, 2, NULL);
	wref_keymap_set(m, k, v); /* the control block exists now */
	wref_keymap_del(m, k);
	wref__alloc_fail_after(0);
	ck_assert_int_eq(wref_keymap_set(m, k, v), -ENOMEM);
	wref__alloc_fail_after(-1);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_uint_eq(wref_strong_count(v), 1);
	ck_assert_uint_eq(wref_keymap_len(m), 0);
	wref_release(k);
	wref_release(v);
	wref_release(m);
	ct_assert_no_leak(start);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("keymap");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_set_get_pop_del);
	tcase_add_test(tc, test_key_death);
	tcase_add_test(tc, test_by_value);
	tcase_add_test(tc, test_foreach);
	tcase_add_test(tc, test_destroy);
	tcase_add_test(tc, test_inline_mode);
	tcase_add_test(tc, test_enomem);
	tcase_add_test(tc, test_foreach_releases_last_ref);
	suite_add_tcase(s, tc);
	return ct_run_suite(s);
}
