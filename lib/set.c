/*
 * set.c - the weak set (WeakSet): members are wref objects held weakly,
 * compared by identity or (WREF_MAP_BY_VALUE) by their type's hash/equal.
 * An entry is the bare table entry (table.h): removed at once when its
 * member dies.
 */
#include "table.h"

struct wref_set {
	struct wref__table t;
	bool by_value;
};

static void set_retire(struct wref__entry *e)
{
	wref__entry_free_rcu(e);
}

static const struct wref__table_ops set_ops = {
	.match = wref__objkey_match,
	.retire = set_retire,
};

static const wref_type set_type = {
	.name = "wref_set",
	.destroy = wref__container_destroy,
};

wref_set *wref_set_new(const wref_map_options *opt)
{
	struct wref_set *s = wref__container_new(&set_type, sizeof *s, opt,
			WREF_MAP_BY_VALUE | WREF_MAP_CREATE_ONCE, &set_ops);
	if (s)
		s->by_value = opt && (opt->flags & WREF_MAP_BY_VALUE);
	return s;
}

int wref_set_add(wref_set *s, void *obj)
{
	if (s)
		wref__check(s, "wref_set_add");
	if (!s || !obj)
		return -EINVAL;
	struct wref__cb *cb = wref__key_cb(obj, s->by_value);
	if (!cb)
		return -errno;
	struct wref__entry *e = wref__alloc(sizeof *e);
	if (!e)
		return -ENOMEM;
	wref__entry_init(&s->t, e, cb);
	struct wref__objkey k = { obj, cb, s->by_value };
	uint64_t h = wref__objkey_hash(&k);
	wref__entry_arm(e);
	wref__rcu_lock();
	/* a dead member never matches (by value) or cannot share our block
	 * (identity): whatever is found is a live equal member */
	struct wref__entry *got = wref__entry_add_unique(e, h, &k);
	wref__rcu_unlock();
	if (got == e) {
		wref__table_grow_check(&s->t);
		return 0;
	}
	wref__entry_discard(e);
	return -EEXIST;
}

int wref_set_discard(wref_set *s, const void *obj)
{
	if (s)
		wref__check(s, "wref_set_discard");
	struct wref__objkey k;
	int r;
	if (!s)
		return -EINVAL;
	if ((r = wref__objkey_init(&k, obj, s->by_value)) != 0)
		return r;
	uint64_t h = wref__objkey_hash(&k);
	for (;;) {
		wref__rcu_lock();
		struct wref__entry *e = wref__table_lookup(&s->t, h, &k);
		bool un = e && wref__entry_unlink(&s->t, e);
		wref__rcu_unlock();
		if (un) {
			wref__entry_removed(e);
			wref__table_grow_check(&s->t);
			return 0;
		}
		if (!e)
			return -ENOENT;
		/* removed under us (death or a racing discard): again */
	}
}

bool wref_set_contains(wref_set *s, const void *obj)
{
	if (s)
		wref__check(s, "wref_set_contains");
	struct wref__objkey k;
	if (!s || wref__objkey_init(&k, obj, s->by_value) != 0)
		return false;
	uint64_t h = wref__objkey_hash(&k);
	bool found = false;
	wref__rcu_lock();
	struct wref__entry *e = wref__table_lookup(&s->t, h, &k);
	if (e) {
		/* relaxed: a snapshot, nothing is read through it; the
		 * header is valid while we can see the entry */
		found = !wref__cb_dead(e->cb);
	}
	wref__rcu_unlock();
	return found;
}

size_t wref_set_len(wref_set *s)
{
	if (s)
		wref__check(s, "wref_set_len");
	return s ? wref__table_len(&s->t) : 0;
}

struct set_walk {
	int (*fn)(void *obj, void *arg);
	void *arg;
};

static int set_visit(const struct wref__pin *p, void *ctx)
{
	struct set_walk *w = ctx;
	return w->fn(p->obj, w->arg);
}

int wref_set_foreach(wref_set *s, int (*fn)(void *obj, void *arg), void *arg)
{
	if (s)
		wref__check(s, "wref_set_foreach");
	if (!s || !fn)
		return -EINVAL;
	struct set_walk w = { fn, arg };
	return wref__table_foreach(&s->t, set_visit, &w);
}
