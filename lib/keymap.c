/*
 * keymap.c - the weak-key map (WeakKeyDictionary): keys are wref objects
 * held weakly (identity, or the type's hash/equal with WREF_MAP_BY_VALUE),
 * values wref objects held strongly by the entry.  When the key dies its
 * entry is unlinked at once by the dying thread (table.h) and the value's
 * release is queued to the executor, so wref_flush() waits for it.
 */
#include "table.h"

struct wref_keymap {
	struct wref__table t;
	bool by_value;
};

struct km_entry {
	struct wref__entry e; /* e.cb: the key's block */
	void *value;          /* strong until retired */
};

static void km_release(struct wref__work *w)
{
	struct wref__entry *e = caa_container_of(w, struct wref__entry, work);
	struct km_entry *k = caa_container_of(e, struct km_entry, e);
	wref_release(k->value);
	wref__entry_free_rcu(e);
}

static void km_retire(struct wref__entry *e)
{
	/* the value may run user code when released: on the executor */
	e->work.run = km_release;
	wref__defer(&e->work);
}

static const struct wref__table_ops km_ops = {
	.match = wref__objkey_match,
	.retire = km_retire,
};

static const wref_type keymap_type = {
	.name = "wref_keymap",
	.destroy = wref__container_destroy,
};

wref_keymap *wref_keymap_new(const wref_map_options *opt)
{
	struct wref_keymap *m = wref__container_new(&keymap_type, sizeof *m,
			opt, WREF_MAP_BY_VALUE | WREF_MAP_CREATE_ONCE, &km_ops);
	if (m)
		m->by_value = opt && (opt->flags & WREF_MAP_BY_VALUE);
	return m;
}

int wref_keymap_set(wref_keymap *m, void *key, void *value)
{
	if (m)
		wref__check(m, "wref_keymap_set");
	if (!m || !key || !value)
		return -EINVAL;
	wref__check(value, "wref_keymap_set");
	struct wref__cb *cb = wref__key_cb(key, m->by_value);
	if (!cb)
		return -errno;
	struct km_entry *k = wref__alloc(sizeof *k);
	if (!k)
		return -ENOMEM;
	wref__entry_init(&m->t, &k->e, cb);
	k->value = wref_retain(value);
	struct wref__objkey ok = { key, cb, m->by_value };
	uint64_t h = wref__objkey_hash(&ok);
	wref__entry_arm(&k->e);
	wref__rcu_lock();
	struct wref__entry *old = wref__entry_add_replace(&k->e, h, &ok);
	wref__rcu_unlock();
	if (old)
		wref__entry_removed(old);
	else
		wref__table_grow_check(&m->t);
	return 0;
}

/* the entry under @key, pinned (caller puts it), or NULL + errno */
static struct km_entry *find(wref_keymap *m, const void *key)
{
	struct wref__objkey ok;
	int r;
	if (!m) {
		errno = EINVAL;
		return NULL;
	}
	if ((r = wref__objkey_init(&ok, key, m->by_value)) != 0) {
		errno = -r;
		return NULL;
	}
	uint64_t h = wref__objkey_hash(&ok);
	wref__rcu_lock();
	struct wref__entry *e = wref__table_lookup(&m->t, h, &ok);
	if (e && !wref__entry_tryhold(e))
		e = NULL;
	wref__rcu_unlock();
	if (!e) {
		errno = ENOENT;
		return NULL;
	}
	return caa_container_of(e, struct km_entry, e);
}

void *wref_keymap_get(wref_keymap *m, const void *key)
{
	if (m)
		wref__check(m, "wref_keymap_get");
	struct km_entry *k = find(m, key);
	if (!k)
		return NULL;
	/* the entry holds the value until it retires, which our pin delays */
	void *v = wref_retain(k->value);
	wref__entry_put(&k->e);
	return v;
}

/* unlink the entry under @key; NULL + errno if absent */
static struct km_entry *take(wref_keymap *m, const void *key)
{
	for (;;) {
		struct km_entry *k = find(m, key);
		if (!k)
			return NULL;
		wref__rcu_lock();
		bool un = wref__entry_unlink(&m->t, &k->e);
		wref__rcu_unlock();
		if (un) {
			wref__entry_put(&k->e); /* our pin; the table count
						   is ours now */
			return k;
		}
		wref__entry_put(&k->e); /* removed meanwhile: look again */
	}
}

void *wref_keymap_pop(wref_keymap *m, const void *key)
{
	if (m)
		wref__check(m, "wref_keymap_pop");
	struct km_entry *k = take(m, key);
	if (!k)
		return NULL;
	void *v = wref_retain(k->value);
	wref__entry_removed(&k->e);
	wref__table_grow_check(&m->t);
	return v;
}

int wref_keymap_del(wref_keymap *m, const void *key)
{
	if (m)
		wref__check(m, "wref_keymap_del");
	struct km_entry *k = take(m, key);
	if (!k)
		return -errno;
	wref__entry_removed(&k->e);
	wref__table_grow_check(&m->t);
	return 0;
}

size_t wref_keymap_len(wref_keymap *m)
{
	if (m)
		wref__check(m, "wref_keymap_len");
	return m ? wref__table_len(&m->t) : 0;
}

static inline struct km_entry *km(struct wref__entry *e)
{
	return caa_container_of(e, struct km_entry, e);
}

struct km_walk {
	int (*fn)(void *key, void *value, void *arg);
	void *arg;
};

static int km_visit(const struct wref__pin *p, void *ctx)
{
	struct km_walk *w = ctx;
	/* the walk holds the entry, which holds the value until it retires */
	return w->fn(p->obj, km(p->e)->value, w->arg);
}

int wref_keymap_foreach(wref_keymap *m,
			int (*fn)(void *key, void *value, void *arg),
			void *arg)
{
	if (m)
		wref__check(m, "wref_keymap_foreach");
	if (!m || !fn)
		return -EINVAL;
	struct km_walk w = { fn, arg };
	return wref__table_foreach(&m->t, km_visit, &w);
}
