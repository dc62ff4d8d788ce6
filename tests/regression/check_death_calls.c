/*
 * check_death_calls.c - what an object's death promises when calls come
 * from inside it: a weak ref, container entry or connection made from the
 * object's own destroy (issue 16 item 5), and the order of a death's
 * destroy and its callbacks (item 10: destroy first, then callbacks and
 * finalizers, in creation order of the refs... see wref.h).
 *
 * Item 5 failed on 8a36efc only when the object ALREADY had a control block
 * (a weak ref made before it died): wref__cb_get returned the block without
 * looking at the count, so the calls below "succeeded" on a dead object
 * (set len counted it forever; valmap get / signal emit read freed memory
 * under ASan).
 */
#include "core_test.h"

#include <errno.h>

/* ---- item 5: calls from the object's own destroy ------------------------ */

static wref_set *g_set;
static wref_valmap *g_map;
static wref_signal *g_sig;
static int g_ret_set, g_ret_map, g_ret_sig, g_err_ref_cb, g_err_ref_shared;
static int g_err_method, g_err_fin;
static void *g_ref_cb, *g_ref_shared, *g_method, *g_fin;
static int cb_runs;

static void never_cb(wref_ref *r, void *arg)
{
	(void)r;
	(void)arg;
	cb_runs++;
}
static void slot(void *obj, void *arg)
{
	(void)obj;
	(void)arg;
}
static void fin_fn(void *arg)
{
	(void)arg;
	cb_runs++;
}

static void self_destroy(void *obj)
{
	g_ret_set = wref_set_add(g_set, obj);
	g_ret_map = wref_valmap_set(g_map, "k", 1, obj);
	g_ret_sig = wref_signal_connect(g_sig, obj, slot);
	errno = 0;
	g_ref_cb = wref_ref_new(obj, never_cb, NULL);
	g_err_ref_cb = errno;
	errno = 0;
	g_ref_shared = wref_ref_new(obj, NULL, NULL);
	g_err_ref_shared = errno;
	errno = 0;
	g_method = wref_method_new(obj, slot);
	g_err_method = errno;
	errno = 0;
	g_fin = wref_finalize(obj, fin_fn, NULL, 0);
	g_err_fin = errno;
}
static const wref_type self_type = { .name = "self", .destroy = self_destroy };

static void run_self(bool with_block)
{
	g_set = wref_set_new(NULL);
	g_map = wref_valmap_new(NULL);
	g_sig = wref_signal_new();
	ck_assert(g_set && g_map && g_sig);
	cb_runs = 0;
	void *o = wref_new(&self_type, 16);
	wref_ref *pre = with_block ? wref_ref_new(o, NULL, NULL) : NULL;
	ck_assert(!with_block || pre);
	wref_release(o);

	ck_assert_int_eq(g_ret_set, -ENOENT);
	ck_assert_int_eq(g_ret_map, -ENOENT);
	ck_assert_int_eq(g_ret_sig, -ENOENT);
	ck_assert_ptr_null(g_ref_cb);
	ck_assert_int_eq(g_err_ref_cb, ENOENT);
	ck_assert_ptr_null(g_ref_shared);
	ck_assert_int_eq(g_err_ref_shared, ENOENT);
	ck_assert_ptr_null(g_method);
	ck_assert_int_eq(g_err_method, ENOENT);
	ck_assert_ptr_null(g_fin);
	ck_assert_int_eq(g_err_fin, ENOENT);
	ck_assert_uint_eq(wref_set_len(g_set), 0);
	ck_assert_uint_eq(wref_valmap_len(g_map), 0);
	ck_assert_ptr_null(wref_valmap_get(g_map, "k", 1));
	ck_assert_uint_eq(wref_signal_len(g_sig), 0);
	ck_assert_uint_eq(wref_signal_emit(g_sig, NULL), 0);
	ck_assert_int_eq(wref_flush(), 0);
	ck_assert_int_eq(cb_runs, 0);
	wref_release(pre);
	wref_release(g_set);
	wref_release(g_map);
	wref_release(g_sig);
}

START_TEST(calls_from_destroy_without_block)
{
	run_self(false);
}
END_TEST

START_TEST(calls_from_destroy_with_block)
{
	run_self(true);
}
END_TEST

/* ---- item 10: destroy happens-before the death's callbacks -------------- */

#define LOG_MAX 64
static char evlog[LOG_MAX][16];
static _Atomic int nlog;
static void logev(const char *s)
{
	int i = atomic_fetch_add(&nlog, 1);
	if (i < LOG_MAX)
		snprintf(evlog[i], sizeof evlog[i], "%s", s);
}

static void ord_destroy(void *obj)
{
	(void)obj;
	/* give the executor every chance to run a callback queued early */
	usleep(2000);
	logev("destroy");
}
static const wref_type ord_type = { .name = "ord", .destroy = ord_destroy };
static void ord_cb(wref_ref *r, void *arg)
{
	(void)r;
	logev(arg);
}
static void ord_fin(void *arg)
{
	logev(arg);
}

/* one object: two callback refs and a finalizer; the destroy must be
 * logged before any of them, on every round (8a36efc: the callbacks were
 * queued before destroy ran and often logged first) */
START_TEST(destroy_before_callbacks)
{
	for (int round = 0; round < 20; round++) {
		atomic_store(&nlog, 0);
		void *o = wref_new(&ord_type, 8);
		wref_ref *a = wref_ref_new(o, ord_cb, "cb-a");
		wref_ref *b = wref_ref_new(o, ord_cb, "cb-b");
		wref_finalizer *f = wref_finalize(o, ord_fin, "fin", 0);
		ck_assert(o && a && b && f);
		wref_release(o);
		ck_assert_int_eq(wref_flush(), 0);
		ck_assert_int_eq(atomic_load(&nlog), 4);
		ck_assert_str_eq(evlog[0], "destroy");
		wref_release(a);
		wref_release(b);
		wref_release(f);
	}
}
END_TEST

/* a cascade: the outer object's destroy releases the inner one, whose
 * destroy is queued in the trashcan behind it; each object's callbacks
 * still follow its own destroy */
struct outer {
	void *inner;
};
static void outer_destroy(void *obj)
{
	struct outer *o = obj;
	logev("d-outer");
	wref_release(o->inner);
	usleep(2000);
	logev("d-outer-end");
}
static const wref_type outer_type = { .name = "outer",
				      .destroy = outer_destroy };
static void inner_destroy(void *obj)
{
	(void)obj;
	logev("d-inner");
}
static const wref_type inner_type = { .name = "inner",
				      .destroy = inner_destroy };

static int find(const char *s)
{
	int n = atomic_load(&nlog);
	for (int i = 0; i < n && i < LOG_MAX; i++)
		if (!strcmp(evlog[i], s))
			return i;
	return -1;
}

START_TEST(cascade_destroy_before_callbacks)
{
	for (int round = 0; round < 20; round++) {
		atomic_store(&nlog, 0);
		struct outer *o = wref_new(&outer_type, sizeof *o);
		void *in = wref_new(&inner_type, 8);
		o->inner = in;
		wref_ref *ro = wref_ref_new(o, ord_cb, "cb-outer");
		wref_ref *ri = wref_ref_new(in, ord_cb, "cb-inner");
		ck_assert(o && in && ro && ri);
		wref_release(o);
		ck_assert_int_eq(wref_flush(), 0);
		ck_assert_int_eq(atomic_load(&nlog), 5);
		ck_assert_int_ge(find("cb-outer"), 0);
		ck_assert_int_gt(find("cb-outer"), find("d-outer-end"));
		ck_assert_int_gt(find("cb-inner"), find("d-inner"));
		/* the inner destroy runs after the outer one returned */
		ck_assert_int_gt(find("d-inner"), find("d-outer-end"));
		wref_release(ro);
		wref_release(ri);
	}
}
END_TEST

/* inline mode: the same order on the releasing thread */
START_TEST(inline_destroy_before_callbacks)
{
	wref_config cfg = { .exec_mode = WREF_EXEC_INLINE };
	ck_assert_int_eq(wref_init(&cfg), 0);
	atomic_store(&nlog, 0);
	void *o = wref_new(&ord_type, 8);
	wref_ref *a = wref_ref_new(o, ord_cb, "cb-a");
	wref_finalizer *f = wref_finalize(o, ord_fin, "fin", 0);
	ck_assert(o && a && f);
	wref_release(o);
	/* inline: everything ran before the release returned */
	ck_assert_int_eq(atomic_load(&nlog), 3);
	ck_assert_str_eq(evlog[0], "destroy");
	wref_release(a);
	wref_release(f);
}
END_TEST

/* ---- out of memory, cascades still loop (issue 16, "also noted") -------- */

/*
 * A root whose destroy releases 64 children, each the head of a chain of
 * 200 objects (half of them weakly referenced, so both spill paths run),
 * with every allocation failing: the trashcan's 32 inline slots fill and it
 * cannot grow.  On 8a36efc the destroys then recursed, one level per chain
 * link (the destroys' frames spread over ~100 KB of stack); now the
 * objects the trashcan cannot take are chained through their own dead
 * memory and the outermost death still loops: the frames stay within a few
 * KB and every destroy runs once.
 */
#define OOM_KIDS 64
#define OOM_CHAIN 200
struct oom_node {
	void *next[OOM_KIDS];
	int nnext;
	int head; /* k + 1 for chain k's head, else 0 */
};
static _Atomic int oom_destroyed;
/* per chain head: destroyed, and its callback ran after that (1) or
 * before it (-1): a spilled death's callbacks wait for its destroy */
static _Atomic int oom_head_dead[OOM_KIDS], oom_cb_order[OOM_KIDS];
static void oom_cb(wref_ref *r, void *arg)
{
	int k = (int)(intptr_t)arg;
	(void)r;
	atomic_fetch_add(&oom_cb_order[k],
			 atomic_load(&oom_head_dead[k]) ? 1 : -100);
}
static uintptr_t oom_lo = UINTPTR_MAX, oom_hi;
static void oom_destroy(void *p)
{
	struct oom_node *n = p;
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	if (sp < oom_lo)
		oom_lo = sp;
	if (sp > oom_hi)
		oom_hi = sp;
	atomic_fetch_add(&oom_destroyed, 1);
	if (n->head)
		atomic_store(&oom_head_dead[n->head - 1], 1);
	for (int i = 0; i < n->nnext; i++)
		wref_release(n->next[i]);
}
static const wref_type oom_type = { .name = "oom", .destroy = oom_destroy };

START_TEST(oom_cascade_loops)
{
	struct oom_node *root = wref_new(&oom_type, sizeof *root);
	wref_ref *refs[OOM_KIDS], *cbrefs[OOM_KIDS];
	ck_assert_ptr_nonnull(root);
	int total = 1;
	for (int k = 0; k < OOM_KIDS; k++) {
		struct oom_node *head = wref_new(&oom_type, sizeof *head);
		ck_assert_ptr_nonnull(head);
		root->next[root->nnext++] = head;
		head->head = k + 1;
		atomic_store(&oom_head_dead[k], 0);
		atomic_store(&oom_cb_order[k], 0);
		/* every other chain's head has a control block, and every
		 * fourth a callback that its death holds through the spill */
		refs[k] = k & 1 ? wref_ref_new(head, NULL, NULL) : NULL;
		cbrefs[k] = k % 4 == 1 ? wref_ref_new(head, oom_cb,
						      (void *)(intptr_t)k)
				       : NULL;
		struct oom_node *cur = head;
		total++;
		for (int i = 1; i < OOM_CHAIN; i++) {
			struct oom_node *n = wref_new(&oom_type, sizeof *n);
			ck_assert_ptr_nonnull(n);
			cur->next[cur->nnext++] = n;
			cur = n;
			total++;
		}
	}
	atomic_store(&oom_destroyed, 0);
	oom_lo = UINTPTR_MAX;
	oom_hi = 0;
	wref__alloc_fail_from(0); /* every allocation fails from here */
	wref_release(root);
	wref__alloc_fail_after(-1);
	ck_assert_int_eq(atomic_load(&oom_destroyed), total);
	ck_assert_msg(oom_hi - oom_lo < 8192, "destroys recursed: their "
		      "frames spread over %lu bytes of stack",
		      (unsigned long)(oom_hi - oom_lo));
	ck_assert_int_eq(wref_flush(), 0);
	for (int k = 0; k < OOM_KIDS; k++) {
		if (refs[k]) {
			ck_assert_ptr_null(wref_ref_get(refs[k]));
			wref_release(refs[k]);
		}
		/* once, after the head's destroy */
		ck_assert_int_eq(atomic_load(&oom_cb_order[k]),
				 cbrefs[k] ? 1 : 0);
		wref_release(cbrefs[k]);
	}
}
END_TEST

static Suite *death_calls_suite(void)
{
	Suite *s = suite_create("death_calls");
	TCase *tc = tcase_create("item5");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, calls_from_destroy_without_block);
	tcase_add_test(tc, calls_from_destroy_with_block);
	suite_add_tcase(s, tc);
	tc = tcase_create("order");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, destroy_before_callbacks);
	tcase_add_test(tc, cascade_destroy_before_callbacks);
	tcase_add_test(tc, inline_destroy_before_callbacks);
	suite_add_tcase(s, tc);
	tc = tcase_create("oom");
	tcase_set_timeout(tc, CT_TIMEOUT);
	tcase_add_test(tc, oom_cascade_loops);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(death_calls_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
